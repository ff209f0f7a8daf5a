"""The gateway's side towards its upstreams: HTTP/1.1 over kept-alive connections,
one pool per upstream origin, each answer read whole (bounded) with httptools.

A request is written as one buffer and its answer parsed as it arrives; the body
passes through untouched. Deadlines cost no timer per request: each connection
notes when its answer is due, and one task per pool sweeps the busy ones
`SWEEP_SECONDS` apart. A connection goes back to its pool when its answer ended
cleanly and both sides keep it alive; anything else closes it. A kept-alive
connection the upstream closed while it sat idle fails before any answer byte:
the request is then sent once more, on a new connection, as HTTP clients do.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import SplitResult

import httptools

__all__ = [
    "MAX_ANSWER_BYTES",
    "Origin",
    "UpstreamAnswer",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamTimeout",
    "pools_for",
]

MAX_ANSWER_BYTES = 64 << 20
MAX_IDLE = 256  # kept-alive connections per origin; more are closed after their answer
SWEEP_SECONDS = 0.05


class UpstreamError(ConnectionError):
    """The upstream could not be reached, broke the connection or sent no valid answer."""


class UpstreamTimeout(TimeoutError):
    pass


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an upstream is: its scheme, host, port and path prefix (from the route
    table, never from a request)."""

    host: str
    port: int
    tls: bool
    prefix: bytes  # prepended to the client's path, without a trailing /
    host_header: bytes

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{_bracketed(self.host)}:{self.port}"

    @classmethod
    def of(cls, url: SplitResult) -> Origin:
        host = url.hostname or ""
        tls = url.scheme == "https"
        port = url.port or (443 if tls else 80)
        named = f"{_bracketed(host)}:{port}" if url.port else _bracketed(host)
        return cls(
            host=host,
            port=port,
            tls=tls,
            prefix=url.path.rstrip("/").encode("latin-1"),
            host_header=named.encode("latin-1"),
        )


@dataclass(slots=True)
class UpstreamAnswer:
    status: int
    headers: list[tuple[bytes, bytes]]  # names lowercased
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection to an upstream; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()  # once: each lookup costs a getpid()
        self.deadline = 0.0  # when the answer in progress is due (the loop's clock)
        self.closed = False
        self.used = False  # has answered before: a failure may be a stale keep-alive
        self._waiter: asyncio.Future[UpstreamAnswer] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._received = False
        self._head_only = False

    # asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamError(f"the upstream sent an invalid answer: {error}"))
            self.close()

    def connection_lost(self, error: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamError("the upstream closed the connection"))

    # httptools
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self._head_only:  # an answer to HEAD has no body whatever its length says
            self._complete(reusable=False)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER_BYTES:
            self._fail(UpstreamError(f"the answer is over {MAX_ANSWER_BYTES} bytes"))
            self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._complete(reusable=self._parser.should_keep_alive())

    # the pool's
    def send(self, data: bytes, head_only: bool, deadline: float) -> asyncio.Future[UpstreamAnswer]:
        assert self.transport is not None
        self.deadline = deadline
        self._waiter = self.loop.create_future()
        self._headers, self._body, self._size = [], [], 0
        self._received, self._head_only = False, head_only
        self.transport.write(data)
        return self._waiter

    @property
    def received(self) -> bool:
        return self._received

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def expire(self) -> None:
        self._fail(UpstreamTimeout())

    def _complete(self, reusable: bool) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue): the final one follows
            self._headers, self._body, self._size = [], [], 0
            return
        self._waiter = None
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        waiter.set_result(UpstreamAnswer(status, self._headers, body))
        self.used = True
        if not reusable:
            self.close()

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class UpstreamPool:
    """Kept-alive connections to one origin."""

    def __init__(self, origin: Origin, tls: ssl.SSLContext | None = None) -> None:
        self.origin = origin
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._tls = (tls or ssl.create_default_context()) if origin.tls else None

    async def request(
        self, head: bytes, body: bytes, timeout: float, head_only: bool = False
    ) -> UpstreamAnswer:
        """Send one request (`head` ends with its blank line) and read its answer, in at
        most `timeout` seconds (give or take SWEEP_SECONDS), connecting included."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        data = head + body
        connection = self._idle_connection() or await self._connect(timeout)
        deadline = connection.loop.time() + timeout
        while True:
            answer = connection.send(data, head_only, deadline)
            self._busy.add(connection)
            try:
                result = await answer
            except UpstreamError:
                stale = connection.used and not connection.received
                if stale and connection.loop.time() < deadline:  # closed while it was idle
                    self._busy.discard(connection)
                    connection = await self._connect(deadline - connection.loop.time())
                    continue
                raise
            except (UpstreamTimeout, asyncio.CancelledError):
                connection.close()
                raise
            finally:
                self._busy.discard(connection)
            self._release(connection)
            return result

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = loop.time()
            for connection in [c for c in self._busy if c.deadline <= now]:
                connection.expire()

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        opening = loop.create_connection(
            _Connection,
            origin.host,
            origin.port,
            ssl=self._tls,
            server_hostname=origin.host if self._tls else None,
        )
        try:
            async with asyncio.timeout(timeout):
                _, connection = await opening
        except TimeoutError:
            raise UpstreamTimeout() from None
        except OSError as error:
            raise UpstreamError(f"cannot connect: {error}") from None
        return connection

    def _release(self, connection: _Connection) -> None:
        if connection.closed:
            return
        if len(self._idle) >= MAX_IDLE:
            connection.close()
            return
        self._idle.append(connection)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def pools_for(
    upstreams: Mapping[str, SplitResult], kept: Mapping[Origin, UpstreamPool]
) -> dict[str, UpstreamPool]:
    """A pool per version: versions at one origin share one, and a pool in `kept` for
    the same origin is reused (its kept-alive connections with it)."""
    by_origin = dict(kept)
    pools = {}
    for version, url in upstreams.items():
        origin = Origin.of(url)
        if origin not in by_origin:
            by_origin[origin] = UpstreamPool(origin)
        pools[version] = by_origin[origin]
    return pools
