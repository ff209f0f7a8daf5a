"""The gateway's HTTP/1.1 server: asyncio protocols over uvloop, httptools parsing,
one handler call per request with its body whole, no framework in between.

It enforces `WebLimits` as `server_limits` does for the model servers: the request
line and headers are bounded in bytes and count (431); a body over its limit is
refused as soon as its declared length or its bytes so far exceed it (413); a
client has `header_timeout` seconds from a request's first byte to its last header
and `body_timeout` more for the body (408); an idle connection is closed; beyond
`max_connections` a connection gets 503 at once. A refusal is written, what the
client still sends is read and dropped for a moment, and the connection closes, so
that the client reads the answer rather than a reset.

Pipelined requests are answered in order: while one is in the handler's hands the
next is parsed and held, and reading pauses. `expect: 100-continue` is answered
here. Deadlines cost no timer per request: each connection notes when its phase
began, and one task sweeps the connections twice a second.

`serve` runs the server the way a pod should stop: on the first SIGTERM it serves
on for `drain_seconds` with every answer closing its connection, then stops taking
connections, lets the requests in progress finish, and returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from email.utils import formatdate
from typing import Any, cast
from urllib.parse import unquote

import httptools

from mlpatterns.routing.messages import Answer, Incoming, error_answer
from mlpatterns.web import Phase, WebLimits, allowed_seconds

__all__ = ["DataPlane", "Handler", "HttpConnection", "serve"]

log = logging.getLogger("mlpatterns.gateway")
Handler = Callable[[Incoming], Awaitable[Answer]]

_now = time.monotonic
IDLE, HEAD, BODY, LINGER = Phase.IDLE, Phase.HEAD, Phase.BODY, Phase.LINGER
SWEEP_SECONDS = 0.5
SHUTDOWN_SECONDS = 30.0
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_UPGRADE = "the gateway does not upgrade connections (websocket, h2c): send HTTP/1.1 requests"


class _Refused(Exception):
    """Raised in a parser callback: the request is refused with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DataPlane:
    """What every connection of one server shares: the handler (and `own`: which
    paths go to another, and that one), the limits, the connections (for the limit
    and the sweeper) and whether it is draining."""

    def __init__(
        self,
        handle: Handler,
        limits: WebLimits,
        *,
        own: tuple[Callable[[str], bool], Handler] | None = None,
        on_client_gone: Callable[[], None] = lambda: None,
        client_header: bytes | None = None,
    ) -> None:
        self.handle = handle
        # behind the compiled data plane (on a unix socket): the client's address is
        # the one this header names, which that plane sets and never takes from a client
        self.client_header = client_header
        self.is_own, self.handle_own = own or (lambda path: False, handle)
        self.limits = limits
        self.on_client_gone = on_client_gone
        self.draining = False
        self.connections: set[HttpConnection] = set()
        self.date = b""
        self.tick(_now())

    def protocol(self) -> HttpConnection:
        return HttpConnection(self)

    def tick(self, now: float) -> None:
        """Refresh the Date header and close the connections past their deadline."""
        self.date = formatdate(usegmt=True).encode()
        for connection in list(self.connections):
            connection.expire_if_late(now)

    async def sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.tick(_now())

    def busy(self) -> int:
        return sum(1 for connection in self.connections if connection.busy)

    def close_idle(self) -> None:
        for connection in list(self.connections):
            if not connection.busy:
                connection.close()


class HttpConnection(asyncio.Protocol):
    """One client connection."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self._loop = asyncio.get_running_loop()  # once: each lookup costs a getpid()
        limits = plane.limits
        self._max_head = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self._max_body = limits.max_body_bytes
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.busy = False  # a request is in the handler's hands
        self._phase = IDLE
        self._since = _now()
        self._head_bytes = 0
        self._refused = False  # what arrives is dropped until the close
        self._pending: deque[Incoming | _Refused] = deque()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._given_id: bytes | None = None
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._continue = False  # the client expects 100-continue
        # one task per connection answers its requests in turn; between requests it
        # waits on `_next`
        self._pump: asyncio.Task[None] | None = None
        self._next: asyncio.Future[Incoming] | None = None

    # asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        if len(self.plane.connections) >= self.plane.limits.max_connections:
            self._refuse(503, "the gateway is at its connection limit; retry shortly")
            self.transport.close()  # not counted, so not swept: it must not linger
            return
        self.plane.connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.plane.connections.discard(self)
        if self._phase == BODY and not self._refused:
            self.plane.on_client_gone()  # nothing is forwarded: no one is left to answer
        self._phase = LINGER
        if self._pump is not None and not self.busy:
            self._pump.cancel()  # waiting for a next request that will not come

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._phase == IDLE:
            self._phase, self._since = HEAD, _now()
        reading_head = self._phase == HEAD
        if reading_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, _NO_UPGRADE)
            return
        except httptools.HttpParserError as error:
            refused = error.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.status, refused.message)
            else:
                self._refuse(400, f"this is not a valid HTTP/1.1 request: {error}")
            return
        # the head alone is this long, give or take one read that also held an
        # earlier request's end
        if self._phase == HEAD and self._head_bytes > self._max_head:
            self._refuse(431, f"the request line and headers exceed {self._max_head} bytes")

    # httptools (a message's state is reset when it completes, not when it begins:
    # one callback less per request)
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers.append((name, value))
        if name == b"content-length":
            if value.isdigit() and int(value) > self._max_body:
                raise _Refused(
                    413, f"the request body is {int(value)} bytes; the limit is {self._max_body}"
                )
        elif name == b"x-request-id":
            self._given_id = value
        elif name == b"expect":
            if value.lower() != b"100-continue":
                raise _Refused(417, "the only expectation the gateway meets is 100-continue")
            self._continue = True

    def on_headers_complete(self) -> None:
        if self._head_bytes > self._max_head and (
            len(self._url) + sum(len(k) + len(v) + 4 for k, v in self._headers) > self._max_head
        ):
            raise _Refused(431, f"the request line and headers exceed {self._max_head} bytes")
        if len(self._headers) > self._max_headers:
            raise _Refused(431, f"the request has over {self._max_headers} headers")
        if self._parser.should_upgrade():  # what follows the head would not be HTTP
            raise _Refused(400, _NO_UPGRADE)
        self._phase, self._since, self._head_bytes = BODY, _now(), 0
        if self._continue and not self.busy and self.transport is not None:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body:
            raise _Refused(413, f"the request body exceeds the limit of {self._max_body} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._request()
        self._url, self._headers, self._body, self._body_bytes = b"", [], [], 0
        self._given_id = None
        self._continue = False
        self._phase, self._since = IDLE, _now()
        if self.busy:
            self._pending.append(request)
            if self.transport is not None:
                self.transport.pause_reading()
        else:
            self._start(request)

    # the plane's
    def expire_if_late(self, now: float) -> None:
        """Close the connection, or refuse its request, if its phase lasted too long."""
        if self.busy or self.transport is None or self.transport.is_closing():
            return
        phase = self._phase
        if now - self._since < allowed_seconds(self.plane.limits, phase):
            return
        if phase in (IDLE, LINGER):
            self.transport.close()
        elif phase == HEAD:
            self._refuse(408, "the request headers took too long")
        else:
            self._refuse(408, "the request body took too long")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _request(self) -> Incoming | _Refused:
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            return _Refused(400, "the request target is not a valid URL")
        raw_path: bytes = url.path or b""
        if not raw_path.startswith(b"/"):  # "*@host:port/..." must never become a URL
            return _Refused(400, "the request target must be a path starting with /")
        text = raw_path.decode("latin-1")
        given = self._given_id
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        return Incoming(
            method=self._parser.get_method().decode("latin-1"),
            raw_path=raw_path,
            path=unquote(text) if "%" in text else text,
            query=url.query or b"",
            raw_headers=self._headers,
            body=body,
            client=self.client if self.plane.client_header is None else self._named_client(),
            keep_alive=self._parser.should_keep_alive(),
            given_id=None if given is None else given.decode("latin-1"),
        )

    def _named_client(self) -> tuple[str, int] | None:
        for name, value in reversed(self._headers):
            if name == self.plane.client_header:
                host, _, port = value.decode("latin-1").rpartition(":")
                if port.isdigit():
                    return host.strip("[]"), int(port)
        return None

    def _start(self, request: Incoming | _Refused) -> None:
        if isinstance(request, _Refused):
            self._refused = True
            self._write_refusal(request)
            return
        self.busy = True
        if self._next is not None:
            self._next.set_result(request)
            self._next = None
        else:
            self._pump = self._loop.create_task(self._serve(request))

    async def _serve(self, request: Incoming) -> None:
        """Answer `request`, then each next one `_start` hands over, in turn."""
        plane = self.plane
        while True:
            try:
                if plane.is_own(request.path):
                    answer = await plane.handle_own(request)
                else:
                    answer = await plane.handle(request)
            except Exception:
                log.exception("the gateway failed to answer %s %s", request.method, request.path)
                answer = error_answer(500, "the gateway failed; its log has the cause", "", "")
            self.busy = False
            self._since = _now()
            transport = self.transport
            if transport is None or transport.is_closing():
                self._pending.clear()  # the client is gone: no one reads the answers
                return
            keep_alive = request.keep_alive and not plane.draining
            transport.write(answer.encode(keep_alive, plane.date))
            if not keep_alive:
                transport.close()
                return
            if self._pending:
                self._loop.call_soon(self._start_pending)
            self._next = self._loop.create_future()
            request = await self._next

    def _start_pending(self) -> None:
        """The next pipelined request (once the pump waits for it again)."""
        self._start(self._pending.popleft())
        if not self._pending and self.transport is not None and not self._refused:
            self.transport.resume_reading()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` and stop reading requests: what the client still sends is
        dropped for LINGER_SECONDS, then the connection closes."""
        transport = self.transport
        if transport is None or transport.is_closing() or self._refused:
            return
        self._refused = True
        if self.busy:  # answers go out in order: this one after the one in progress
            self._pending.append(_Refused(status, message))
            return
        self._write_refusal(_Refused(status, message))

    def _write_refusal(self, refused: _Refused) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        answer = error_answer(refused.status, refused.message, "", "")
        transport.write(answer.encode(False, self.plane.date))
        self._phase, self._since = LINGER, _now()
        if transport.can_write_eof():
            transport.write_eof()
        transport.resume_reading()


async def serve(
    plane: DataPlane,
    host: str,
    port: int,
    *,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGINT, or SIGTERM and the drain after it; each of `background`
    runs as a task meanwhile; `on_stop` runs once the requests in progress ended."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def terminate() -> None:
        drain = plane.limits.drain_seconds
        if drain > 0 and not plane.draining:
            plane.draining = True
            loop.call_later(drain, stopped.set)
        else:
            stopped.set()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    loop.add_signal_handler(signal.SIGINT, stopped.set)
    server = await loop.create_server(plane.protocol, host, port, backlog=2048)
    tasks = [loop.create_task(plane.sweep())]
    tasks += [loop.create_task(job()) for job in background]
    try:
        await stopped.wait()
    finally:
        plane.draining = True  # what is still answered closes its connection
        server.close()
        plane.close_idle()
        deadline = loop.time() + SHUTDOWN_SECONDS
        while plane.busy() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        if on_stop is not None:
            await on_stop()
