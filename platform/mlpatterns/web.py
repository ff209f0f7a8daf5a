"""What every HTTP server of mlpatterns shares: its limits, how it reads a body, how it
names a request, and the shape of its errors. Standard library only, so that the
settings can name the limits; `mlpatterns.server_limits` enforces them in uvicorn.

Bodies are bounded while they stream in (`read_body`), so a lying or absent
Content-Length cannot grow memory.
"""

from __future__ import annotations

import enum
import os
import random
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from itertools import count
from typing import Any

__all__ = [
    "ERROR_SCHEMAS",
    "BodyTooLarge",
    "ClientGone",
    "Phase",
    "WebLimits",
    "allowed_seconds",
    "is_valid_request_id",
    "new_request_id",
    "openapi_answer",
    "read_body",
    "request_id",
]

MAX_REQUEST_ID = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}")


# every error body, in every server: {"error": "what was wrong and how to fix it"}
ERROR_SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
}


def openapi_answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI 3.0 response with a JSON body of `schema` (any object by default)."""
    content = {"application/json": {"schema": schema or {"type": "object"}}}
    return {"description": description, "content": content}


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
    drain_seconds: float = 0.0  # after a SIGTERM: serve on, closing every connection


class Phase(enum.IntEnum):
    """Where a server connection is: waiting for a request, reading its head, reading
    its body, in the application's hands, draining after an early answer."""

    IDLE = 0
    HEAD = 1
    BODY = 2
    BUSY = 3
    LINGER = 4


LINGER_SECONDS = 1.0


def allowed_seconds(limits: WebLimits, phase: Phase) -> float:
    """How long a connection may stay in `phase` (a busy one: as long as it needs)."""
    if phase == Phase.IDLE:
        return limits.idle_timeout + limits.header_timeout
    if phase == Phase.HEAD:
        return limits.header_timeout
    if phase == Phase.BODY:
        return limits.body_timeout
    if phase == Phase.LINGER:
        return LINGER_SECONDS
    return float("inf")


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
