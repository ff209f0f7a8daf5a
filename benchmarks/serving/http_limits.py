"""What the HTTP limits cost per request: uvicorn's httptools protocol against
mlpatterns' LimitedHttpToolsProtocol (server_limits.py), side by side in one process.

Each round feeds the same keep-alive request to a fresh connection of each protocol,
N times, with a trivial ASGI app and a transport that drops what it is given, so
what differs is the protocol alone; rounds alternate, and the median ratio of the
rounds is printed (the machine's speed drifts between rounds, not within one).

    python benchmarks/serving/http_limits.py [--rounds 20] [--requests 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from mlpatterns.server_limits import LimitedConfig, LimitedHttpToolsProtocol
from mlpatterns.web import WebLimits

REQUEST = (
    b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})


class NullTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def per_request(protocol: type, config: Any, requests: int) -> float:
    """Microseconds per request on one keep-alive connection."""
    state = ServerState()
    connection = protocol(config=config, server_state=state, app_state={})
    connection.connection_made(NullTransport())
    started = time.perf_counter()
    for _ in range(requests):
        connection.data_received(REQUEST)
        while state.tasks:
            await asyncio.sleep(0)
    return (time.perf_counter() - started) / requests * 1e6


async def main(rounds: int, requests: int) -> None:
    common = {"access_log": False, "log_level": "warning", "proxy_headers": False}
    plain = uvicorn.Config(app, http="httptools", **common)
    limited = LimitedConfig(app, limits=WebLimits(), **common)
    plain.load()
    limited.load()
    ours, theirs = [], []
    for _ in range(rounds):
        theirs.append(await per_request(HttpToolsProtocol, plain, requests))
        ours.append(await per_request(LimitedHttpToolsProtocol, limited, requests))
    ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
    print(f"uvicorn's protocol   {statistics.median(theirs):6.2f} us/request (median of {rounds})")
    print(f"with the limits      {statistics.median(ours):6.2f} us/request")
    print(
        f"ratio within rounds  {statistics.median(ratios):.3f} "
        f"({min(ratios):.3f} to {max(ratios):.3f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.requests))
