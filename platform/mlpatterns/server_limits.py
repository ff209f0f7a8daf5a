"""uvicorn, configured to enforce `WebLimits` before the application sees a request.

uvicorn bounds neither the request line nor the headers, and gives a connection
that never finishes its headers all the time it wants. Here the request line and
headers are bounded in bytes and count (431 beyond them); a client has
`header_timeout` seconds from a request's first byte to its last header and
`body_timeout` more for the body (408, then the connection closes); an idle
connection is closed; beyond `max_connections` a request gets 503 at once; and a
request answered before its body ended (a 413) is drained for a moment, then its
connection closed, so the client reads the answer rather than a reset.

`DrainingServer` stops as a pod should: on the first SIGTERM it goes on serving for
`drain_seconds`, every answer closing its connection (`connection: close`), so that
clients holding a connection to it open a new one, which kube-proxy sends to the
pods that stay once the endpoints drop this one; then it shuts down gracefully.

Deadlines cost no timer per request: each connection notes when its current phase
must end, and one task per server process sweeps the connections twice a second.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlpatterns.web import Phase, WebLimits, allowed_seconds

__all__ = ["DrainingServer", "LimitedConfig", "LimitedHttpToolsProtocol", "uvicorn_config"]

_now = time.monotonic
# a connection's phases: waiting for a request, reading its head, reading its body,
# in the application's hands, draining after an early answer (IDLE < HEAD matters)
IDLE, HEAD, BODY, BUSY, LINGER = Phase
SWEEP_SECONDS = 0.5
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class LimitedConfig(uvicorn.Config):
    """uvicorn's configuration with the limits the protocol reads (both pickle by
    reference, so `--workers` processes get them too)."""

    def __init__(self, app: Any, *, limits: WebLimits, **options: Any) -> None:
        super().__init__(app, http=LimitedHttpToolsProtocol, **options)
        self.limits = limits
        self.draining = False  # set by DrainingServer; every protocol of the process reads it


class _Refused(Exception):
    pass


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits: WebLimits = config.limits
        self.limits = limits
        self._limited: LimitedConfig = config
        self._max_head = limits.max_header_bytes  # read per header: plain attributes
        self._max_headers = limits.max_headers
        self._head_bytes = 0
        self._refusal: tuple[int, str] | None = None  # what a parser error should answer
        self._discarding = False  # refused: what arrives is dropped until the close
        # the current phase and when it began (monotonic seconds); the sweeper compares
        self._phase = IDLE
        self._since = _now()
        _ensure_sweeper(self.server_state, self.loop)

    def expire_if_late(self, now: float) -> None:
        """Close the connection if its phase has lasted too long (the sweeper calls)."""
        phase = self._phase
        if phase == BODY and self.cycle is not None and not self.cycle.more_body:
            phase = BUSY  # the whole body is in: the application has the request
        if phase == BUSY or self.transport is None or self.transport.is_closing():
            return
        if now - self._since < allowed_seconds(self.limits, phase):
            return
        self._phase = BUSY
        answered = self.cycle is not None and self.cycle.response_started
        if phase in (IDLE, LINGER) or answered:
            self.transport.close()
        elif phase == HEAD:
            self._refuse_now(408, "the request headers took too long")
        else:
            self._refuse_now(408, "the request body took too long")

    def _refuse_now(self, status: int, message: str) -> None:
        """Answer `status` and stop reading requests: what the client still sends is
        read and dropped for LINGER_SECONDS, so that it reads the answer rather than
        a reset, then the connection closes."""
        if self.transport.is_closing() or self._discarding:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the application sees the client gone
            self.cycle.message_event.set()
        body = json.dumps({"error": message}).encode()
        reason = _REASONS.get(status, b"Error")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self._discarding = True
        self._phase, self._since = LINGER, _now()
        if self.transport.can_write_eof():
            self.transport.write_eof()

    # uvicorn's protocol: three overrides per request, each a few attribute writes
    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse_now(*self._refusal)
            return
        super().send_400_response(msg)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        phase = self._phase
        if phase == IDLE:
            self._phase, self._since = HEAD, _now()
        reading_head = phase in (IDLE, HEAD, BUSY)  # in BUSY: a pipelined request's head
        if reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # no head completed meanwhile (that resets the count): the head alone is this
        # long, give or take one read that also held an earlier request's end
        if reading_head and self._head_bytes > self._max_head and self._phase != BODY:
            self._refuse_now(431, f"the request line and headers exceed {self._max_head} bytes")

    def on_headers_complete(self) -> None:
        # the reads so far may hold body bytes too: only then is the head measured
        suspect = self._head_bytes > self._max_head
        self._phase, self._since, self._head_bytes = BODY, _now(), 0
        if suspect and len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers) > (
            self._max_head
        ):
            self._refusal = (431, f"the request line and headers exceed {self._max_head} bytes")
        elif len(self.headers) > self._max_headers:
            self._refusal = (431, f"the request has over {self._max_headers} headers")
        if self._refusal is not None:
            raise _Refused(self._refusal[1])  # httptools: a parser error, then ours
        super().on_headers_complete()
        if self._limited.draining and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with `connection: close`, then closed

    def on_response_complete(self) -> None:
        # answered before the body ended (a 413): drain a moment, then close
        self._phase = LINGER if self.cycle is not None and self.cycle.more_body else IDLE
        self._since = _now()
        super().on_response_complete()


def _ensure_sweeper(server_state: Any, loop: asyncio.AbstractEventLoop) -> None:
    """One task per server process closes the connections past their deadline."""
    if getattr(server_state, "mlpatterns_sweeper", None) is not None:
        return

    async def sweep() -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = _now()
            for connection in list(server_state.connections):
                if isinstance(connection, LimitedHttpToolsProtocol):
                    connection.expire_if_late(now)

    server_state.mlpatterns_sweeper = loop.create_task(sweep())


def uvicorn_config(app: Any, host: str, port: int, limits: WebLimits, **options: Any) -> Any:
    """A uvicorn configuration that enforces `limits`; `options` pass through."""
    return LimitedConfig(
        app,
        limits=limits,
        host=host,
        port=port,
        loop="uvloop",
        access_log=False,
        log_config=None,  # the process's own setup (mlpatterns.logsetup) stays in force
        log_level="warning",
        proxy_headers=False,  # nothing here reads the client's address
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=max(1, round(limits.idle_timeout)),
        timeout_graceful_shutdown=30,
        **options,
    )


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain (see the module's docstring): the first SIGTERM
    starts `limits.drain_seconds` of serving with every connection closed after its
    answer; the end of the drain, a second signal or a SIGINT stop it gracefully.
    A stop by signal ends the process with status 0 (uvicorn re-raises the signal
    after its shutdown, which a supervisor would read as a crash)."""

    config: LimitedConfig
    _drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = self.config.limits.drain_seconds
        if sig == signal.SIGTERM and drain > 0 and self._drain_until is None:
            self.config.draining = True
            self._drain_until = _now() + drain
            return
        super().handle_exit(sig, frame)
        self._captured_signals.clear()

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and _now() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)
