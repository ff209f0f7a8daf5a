"""What the gateway sends and answers, as plain HTTP messages: the outgoing request
(its upstream URL built from the route table's origin and the client's raw path),
the headers that go on, and the answer it writes back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from starlette.types import Send
from yarl import URL

__all__ = [
    "HOP_BY_HOP",
    "PASSED_OVER",
    "Answer",
    "Outgoing",
    "answered_headers",
    "error_answer",
    "forwarded_headers",
    "parse_upstreams",
    "upstream_url",
]

# hop-by-hop (RFC 9110 7.6.1), plus what the gateway sets itself; so are the headers
# a request's own Connection header names
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}
HOP_BY_HOP_BYTES = {name.encode() for name in HOP_BY_HOP}
PASSED_OVER = HOP_BY_HOP | {"content-encoding", "date", "server"}


@dataclass(frozen=True)
class Outgoing:
    """One request as the gateway sends it on (to the chosen version or the shadow)."""

    method: str
    path: str  # as the client sent it: still percent-encoded, always starting with /
    query: str  # likewise encoded
    headers: dict[str, str]
    body: bytes


def upstream_url(base: URL, out: Outgoing) -> URL:
    """The upstream's scheme, host and port (from the route table, never from the
    request), with the client's path and query appended exactly as they were sent."""
    return URL.build(
        scheme=base.scheme,
        host=base.raw_host or "",
        port=base.explicit_port,
        path=base.raw_path.rstrip("/") + out.path,
        query_string=out.query,
        encoded=True,
    )


def parse_upstreams(upstreams: Mapping[str, str]) -> dict[str, URL]:
    """`version -> http://host:port[/prefix]`; anything else is refused at start."""
    parsed = {}
    for version, text in upstreams.items():
        url = URL(text)
        if url.scheme not in ("http", "https") or not url.raw_host or url.user or url.query_string:
            raise ValueError(f"upstream of {version} must be http(s)://host:port, not {text!r}")
        parsed[version] = url
    return parsed


def forwarded_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The client's headers minus hop-by-hop ones and those its Connection header names."""
    named = {
        token.strip().lower()
        for key, value in raw
        if key == b"connection"
        for token in value.split(b",")
    }
    return {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in raw
        if k not in HOP_BY_HOP_BYTES and k not in named
    }


def answered_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """An upstream's answer headers (lowercased) minus hop-by-hop ones, those its
    Connection header names, and those the gateway writes itself."""
    named = {
        token.strip().lower()
        for key, value in headers.items()
        if key.lower() == "connection"
        for token in value.split(",")
    }
    dropped = PASSED_OVER | named if named else PASSED_OVER
    return {k.lower(): v for k, v in headers.items() if k.lower() not in dropped}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes
    upstream_seconds: float = 0.0  # spent waiting for upstreams (the gateway's share is the rest)

    async def send(self, send: Send) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        raw.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


def error_answer(status: int, message: str, request_id: str, version: str) -> Answer:
    headers = {"content-type": "application/json"}
    if request_id:
        headers["x-request-id"] = request_id
    if version:
        headers["x-mlpatterns-version"] = version
    return Answer(status, headers, orjson.dumps({"error": message}))
