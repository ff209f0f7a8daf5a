"""What the gateway sends and answers, as HTTP/1.1 bytes: the request it writes to an
upstream (the route table's origin, the client's target exactly as sent), the
headers that go on either way, and the answer it writes back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import SplitResult, urlsplit

import orjson

__all__ = [
    "HOP_BY_HOP",
    "PASSED_OVER",
    "Answer",
    "Incoming",
    "answered_headers",
    "error_answer",
    "forwarded_headers",
    "parse_upstreams",
    "request_head",
    "upstream_target",
]

# hop-by-hop (RFC 9110 7.6.1), plus what the gateway sets itself; so are the headers
# a request's own Connection header names
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",  # the gateway answers 100-continue itself
    }
)
PASSED_OVER = HOP_BY_HOP | {b"date", b"server"}
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s" % (s.value, s.phrase.encode()) for s in HTTPStatus}


@dataclass(slots=True)
class Incoming:
    """One client request as the data plane parsed it (the body is whole)."""

    method: str
    raw_path: bytes  # as sent: still percent-encoded, always starting with /
    path: str  # decoded: what rules match
    query: bytes  # as sent, without the ?
    raw_headers: list[tuple[bytes, bytes]]  # lowercase names, every one, in order
    body: bytes
    client: tuple[str, int] | None = None
    keep_alive: bool = True
    given_id: str | None = None  # its x-request-id as sent (the last one), if any
    _headers: dict[str, str] | None = field(default=None, init=False, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        """Lowercase names, the last of repeated ones: what rules match (made when first
        asked for: a table without header rules never needs them)."""
        if self._headers is None:
            self._headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw_headers}
        return self._headers


@dataclass(slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]  # lowercase names
    body: bytes
    upstream_seconds: float = 0.0  # spent waiting for upstreams (the gateway's share is the rest)
    length: int | None = None  # for HEAD: the length a GET would have had

    def encode(self, keep_alive: bool, date: bytes) -> bytes:
        """The answer as written to the client, `connection: close` unless `keep_alive`."""
        length = len(self.body) if self.length is None else self.length
        line = _STATUS_LINES.get(self.status) or b"HTTP/1.1 %d " % self.status
        parts = [line]
        for name, value in self.headers:
            parts += (b"\r\n", name, b": ", value)
        parts += (b"\r\ncontent-length: %d\r\ndate: " % length, date)
        parts.append(b"\r\n\r\n" if keep_alive else b"\r\nconnection: close\r\n\r\n")
        if self.length is None:
            parts.append(self.body)
        return b"".join(parts)


def _connection_named(raw: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    return frozenset(
        token.strip().lower()
        for key, value in raw
        if key == b"connection"
        for token in value.split(b",")
    )


def forwarded_headers(
    raw: list[tuple[bytes, bytes]], dropped: frozenset[bytes] = HOP_BY_HOP
) -> list[tuple[bytes, bytes]]:
    """A request's headers (lowercase names) minus `dropped` (hop-by-hop ones, and
    what the gateway sets itself) and those its Connection header names."""
    for name, _ in raw:
        if name == b"connection":
            dropped = dropped | _connection_named(raw)
            break
    return [(k, v) for k, v in raw if k not in dropped]


def answered_headers(
    raw: list[tuple[bytes, bytes]], dropped: frozenset[bytes] = PASSED_OVER
) -> list[tuple[bytes, bytes]]:
    """An upstream's answer headers (lowercase names) minus `dropped` (hop-by-hop ones
    and those the gateway writes itself) and those its Connection header names."""
    return forwarded_headers(raw, dropped)


def upstream_target(prefix: bytes, raw_path: bytes, query: bytes) -> bytes:
    """The request target sent upstream: the origin's path prefix, then the client's
    path and query exactly as they were sent."""
    return prefix + raw_path + b"?" + query if query else prefix + raw_path


def request_head(
    method: str, target: bytes, host: bytes, headers: list[tuple[bytes, bytes]], length: int
) -> bytes:
    """A request's line and headers, up to and including the blank line."""
    parts = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", host]
    for name, value in headers:
        parts += (b"\r\n", name, b": ", value)
    parts.append(b"\r\ncontent-length: %d\r\n\r\n" % length)
    return b"".join(parts)


def parse_upstreams(upstreams: Mapping[str, str]) -> dict[str, SplitResult]:
    """`version -> http://host:port[/prefix]`; anything else is refused at start."""
    parsed = {}
    for version, text in upstreams.items():
        url = urlsplit(text)
        plain = not (url.username or url.password or url.query or url.fragment)
        valid = url.scheme in ("http", "https") and bool(url.hostname) and _numeric_port(url)
        if not (valid and plain):
            raise ValueError(f"upstream of {version} must be http(s)://host:port, not {text!r}")
        parsed[version] = url
    return parsed


def _numeric_port(url: SplitResult) -> bool:
    try:
        _ = url.port  # raises when the port is not a number
    except ValueError:
        return False
    return True


def error_answer(status: int, message: str, request_id: str, version: str) -> Answer:
    headers = [(b"content-type", b"application/json")]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    if version:
        headers.append((b"x-mlpatterns-version", version.encode()))
    return Answer(status, headers, orjson.dumps({"error": message}))
