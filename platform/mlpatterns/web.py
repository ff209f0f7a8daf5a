"""What every HTTP server of mlpatterns shares: its limits, how it reads a body, how it
names a request, and how uvicorn is configured to enforce the rest.

Limits apply before the application sees a request: the request line and headers
are bounded in bytes and count (431 or 414 beyond them), a client has
`header_timeout` seconds to send them and `body_timeout` more for the body (408, or
the connection closed), an idle connection is closed, and beyond `max_connections`
connections a request gets 503 at once. Bodies are bounded while they stream in
(`read_body`), so a lying or absent Content-Length cannot grow memory.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from itertools import count
from typing import Any

import orjson

__all__ = [
    "BodyTooLarge",
    "ClientGone",
    "WebLimits",
    "is_valid_request_id",
    "new_request_id",
    "read_body",
    "request_id",
    "uvicorn_config",
]

MAX_REQUEST_ID = 128
LINGER_SECONDS = 1.0
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}")


@dataclass(frozen=True)
class WebLimits:
    """Per-server limits; every field has a `MLPATTERNS_HTTP_*` setting (see settings)."""

    max_body_bytes: int = 4 << 20
    max_header_bytes: int = 16 << 10  # request line and every header, names included
    max_headers: int = 100
    header_timeout: float = 10.0  # from a request's first byte to its last header
    body_timeout: float = 60.0  # from the last header to the body's last byte
    idle_timeout: float = 5.0  # a connection with no request in progress
    max_connections: int = 1024  # beyond: 503 at once, not a queue


class BodyTooLarge(Exception):
    def __init__(self, limit: int, declared: int | None = None) -> None:
        self.limit = limit
        if declared is not None:
            message = f"the request body is {declared} bytes; the limit is {limit}"
        else:
            message = f"the request body exceeds the limit of {limit} bytes"
        super().__init__(message)


class ClientGone(Exception):
    """The client closed the connection before its whole body arrived."""


def is_valid_request_id(value: str) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


class _RequestIds:
    """32 hex digits, like a uuid4: 64 random bits for the process, then a count.
    Request ids must be unique, not secret; a count costs a third of fresh random bits."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a forked child must not repeat ids

    def reset(self) -> None:
        self.prefix = f"{random.getrandbits(64):016x}"
        self.numbers = count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.numbers):016x}"


new_request_id = _RequestIds()


def request_id(given: str | None) -> str:
    """The client's `x-request-id` when it is 1 to 128 of `[A-Za-z0-9._:-]`, else a new
    one: an id is echoed, logged and remembered, so it must be short and inert."""
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return new_request_id()


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(scope: MutableMapping[str, Any], receive: Any, limit: int) -> bytes:
    """The whole body of an ASGI request, refused (`BodyTooLarge`) as soon as it is
    known to pass `limit`: at once for a declared length, else while it streams."""
    declared = declared_length(scope["headers"])
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit, declared)
    chunks, size, more = [], 0, True
    while more:  # ASGI messages read directly: request.stream() is an async generator
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # one chunk: no copy


def limited_protocol(limits: WebLimits) -> type:
    """uvicorn's httptools protocol with the header limits and read timeouts of
    `limits` (uvicorn bounds neither the request line nor the headers, and gives a
    connection that never finishes its headers all the time it wants)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class _Refusal(Exception):
        pass

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._head_count = 0
            self._refusal: tuple[int, str] | None = None
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(limits.idle_timeout + limits.header_timeout, None)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self, seconds: float, refusal: tuple[int, str] | None) -> None:
            """Close the connection in `seconds` (answering `refusal` if one is in
            progress and not yet answered) unless disarmed first."""
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expire, refusal)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self, refusal: tuple[int, str] | None) -> None:
            self._deadline = None
            answered = self.cycle is not None and self.cycle.response_started
            if refusal is None or answered:
                self.transport.close()  # an idle connection, or one already answered
                return
            self._refuse_now(*refusal)

        def _refuse_now(self, status: int, message: str) -> None:
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True  # the application sees the client gone
                self.cycle.message_event.set()
            body = orjson.dumps({"error": message})
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s"
                % (status, _REASONS.get(status, b"Error"), len(body), body)
            )
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            if self._refusal is not None:
                self._refuse_now(*self._refusal)
                return
            super().send_400_response(msg)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = self._head_count = 0
            self._arm(limits.header_timeout, (408, "the request headers took too long"))

        def on_url(self, url: bytes) -> None:
            self._head_bytes += len(url)
            if self._head_bytes > limits.max_header_bytes:
                self._refuse(414, f"the request target exceeds {limits.max_header_bytes} bytes")
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_bytes += len(name) + len(value) + 4
            self._head_count += 1
            if self._head_bytes > limits.max_header_bytes:
                self._refuse(431, f"the request headers exceed {limits.max_header_bytes} bytes")
            if self._head_count > limits.max_headers:
                self._refuse(431, f"the request has over {limits.max_headers} headers")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._arm(limits.body_timeout, (408, "the request body took too long"))
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            unread = self.cycle is not None and self.cycle.more_body
            super().on_response_complete()
            if unread and not self.transport.is_closing():
                # answered before the body ended (a 413): drain for a moment so the
                # client reads the answer instead of a reset, then close
                self._arm(LINGER_SECONDS, None)
                return
            if not self.transport.is_closing():
                self._arm(limits.idle_timeout + limits.header_timeout, None)

        def _refuse(self, status: int, message: str) -> None:
            self._refusal = (status, message)
            raise _Refusal(message)  # httptools turns it into a parser error, then ours

    return LimitedHttpToolsProtocol


_REASONS = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


def uvicorn_config(app: Any, host: str, port: int, limits: WebLimits, **options: Any) -> Any:
    """A uvicorn.Config that enforces `limits`; `options` pass through (workers, ...)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=limited_protocol(limits),
        access_log=False,
        log_level="warning",
        proxy_headers=False,  # nothing here reads the client's address
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=max(1, round(limits.idle_timeout)),
        timeout_graceful_shutdown=30,
        **options,
    )
