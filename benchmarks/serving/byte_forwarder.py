"""The floor for a gateway in Python: the leanest forwarding path (uvloop, httptools
parsing only to find where each message ends, the bytes passed through untouched, one
upstream connection per client connection), with no routing, log, metrics or limits.
What the gateway costs above this is its own; what this costs is Python's.

    python byte_forwarder.py LISTEN_HOST:PORT UPSTREAM_HOST:PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    """The upstream connection: collects one answer's bytes until its message ends."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.parts: list[bytes] = []
        self.complete = False
        self.answer: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parts.append(data)
        self.parser.feed_data(data)
        if self.complete and self.answer is not None:
            self.complete = False
            self.parser = httptools.HttpResponseParser(self)
            self.answer.set_result(b"".join(self.parts))
            self.parts = []

    def on_message_complete(self) -> None:
        self.complete = True

    def connection_lost(self, error: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("the upstream closed"))


class Client(asyncio.Protocol):
    """A client connection: each complete request is forwarded in turn."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.parser = httptools.HttpRequestParser(self)
        self.parts: list[bytes] = []
        self.requests: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.pump: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.pump = asyncio.get_running_loop().create_task(self.forward())

    def data_received(self, data: bytes) -> None:
        self.parts.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.requests.put_nowait(b"".join(self.parts))
        self.parts = []

    def connection_lost(self, error: Exception | None) -> None:
        if self.pump is not None:
            self.pump.cancel()

    async def forward(self) -> None:
        loop = asyncio.get_running_loop()
        transport, upstream = await loop.create_connection(Upstream, *self.upstream)
        try:
            while True:
                request = await self.requests.get()
                upstream.answer = loop.create_future()
                transport.write(request)
                answer = await upstream.answer
                assert self.transport is not None
                self.transport.write(answer)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            transport.close()


async def serve(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: Client(upstream), *listen)
    await server.serve_forever()


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


if __name__ == "__main__":
    uvloop.run(serve(address(sys.argv[1]), address(sys.argv[2])))
