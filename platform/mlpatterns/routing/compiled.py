"""The compiled data plane (`dataplane/`, Rust) in front of this gateway, as Envoy in
front of Istio's control plane: a child process listens on the gateway's address and
executes the route table this process compiles; this process stays the control plane.

- Routes: the table (`wire.table_wire`) goes to the child over a unix socket at start
  and after every `Gateway.replace_table`, so a reload drops no request.
- What the child does not execute it passes on, request by request, to this
  process's own data plane on a second unix socket, naming the client's address in
  `x-mlpatterns-client`: the gateway's own endpoints (`/-/...`, `/feedback`,
  `/metrics`), and whole tables that need the Python gateway (`wire.delegated`: a
  graph, a follow-up, thresholds, TLS upstreams).
- Records: the child sends its decision records (already JSON lines) to the decision
  log, and its warnings and access lines to this process's log; records in batches
  20 ms apart, so this process wakes for a batch, not for each request.
- Metrics and feedback: on each scrape this process asks the child for its counts and
  folds them into the gateway's metrics; `/feedback` asks it which version answered.

SIGTERM is passed to the child, which drains as the Python data plane would; this
process stops once the child has.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import orjson

from mlpatterns.logsetup import log_access, request_fields
from mlpatterns.meters import LATENCY_BUCKETS
from mlpatterns.routing.dataplane import DataPlane
from mlpatterns.routing.gateway import OWN_HEADERS, Gateway, log
from mlpatterns.routing.gateway_metrics import SnapshotFold
from mlpatterns.routing.messages import HOP_BY_HOP, PASSED_OVER
from mlpatterns.routing.wire import delegated, table_wire
from mlpatterns.web import WebLimits

__all__ = ["CompiledPlane", "CompiledPlaneError", "find_dataplane", "serve_behind"]

ASK_SECONDS = 5.0
START_SECONDS = 10.0


class CompiledPlaneError(RuntimeError):
    pass


def find_dataplane(configured: Path | None) -> Path:
    """The binary: `configured` (MLPATTERNS_DATAPLANE) or `mlpatterns-dataplane` on PATH."""
    if configured is not None:
        if not os.access(configured, os.X_OK):
            raise CompiledPlaneError(f"MLPATTERNS_DATAPLANE={configured} is not an executable")
        return configured
    found = shutil.which("mlpatterns-dataplane")
    if found is None:
        raise CompiledPlaneError(
            "mlpatterns-dataplane is not on PATH: build it with `hack/dataplane build` and set "
            "MLPATTERNS_DATAPLANE to `hack/dataplane path`, or use --data-plane python"
        )
    return Path(found)


def _names(headers: frozenset[bytes]) -> list[str]:
    return sorted(name.decode() for name in headers)


class _ControlConnection(asyncio.Protocol):
    """The child's end of the control socket, as this process reads it."""

    def __init__(self, plane: CompiledPlane) -> None:
        self.plane = plane
        self.transport: asyncio.Transport | None = None
        self._partial = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.plane.connected(self)

    def data_received(self, data: bytes) -> None:
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        if end:
            self.plane.received(data[:end])

    def connection_lost(self, error: Exception | None) -> None:
        self.plane.disconnected()


class CompiledPlane:
    """The child process and its control connection."""

    def __init__(
        self,
        binary: Path,
        gateway: Gateway,
        *,
        shadow_limit: int,
        remembered: int = 100_000,
        default_timeout: float = 30.0,
    ) -> None:
        self.binary = binary
        self.gateway = gateway
        self.shadow_limit = shadow_limit
        self.remembered = remembered
        self.default_timeout = default_timeout
        self.folder = Path(tempfile.mkdtemp(prefix="mlpatterns-gateway-"))
        self.control_path = self.folder / "control.sock"
        self.delegate_path = self.folder / "delegate.sock"
        self.process: asyncio.subprocess.Process | None = None
        self._connection: _ControlConnection | None = None
        self._ready: asyncio.Future[None] | None = None
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._asks = itertools.count()
        self._fold = SnapshotFold(gateway.metrics)
        gateway.on_change(self.push)

    def config_line(self) -> bytes:
        table, upstreams = self.gateway.table, self.gateway.upstreams
        config = {
            "table": table_wire(table),
            "upstreams": upstreams,
            "delegated": delegated(table, upstreams),
            "buckets": LATENCY_BUCKETS,
            "headers": {
                "hop_by_hop": _names(HOP_BY_HOP),
                "passed_over": _names(PASSED_OVER - HOP_BY_HOP),
                "own": _names(OWN_HEADERS),
            },
        }
        return orjson.dumps({"config": config}) + b"\n"

    def arguments(self, host: str, port: int, limits: WebLimits) -> list[str]:
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        arguments = [
            str(self.binary),
            "serve",
            *("--listen", listen),
            *("--control", str(self.control_path)),
            *("--delegate", str(self.delegate_path)),
            *("--max-body-bytes", str(limits.max_body_bytes)),
            *("--max-header-bytes", str(limits.max_header_bytes)),
            *("--max-headers", str(limits.max_headers)),
            *("--header-timeout", str(limits.header_timeout)),
            *("--body-timeout", str(limits.body_timeout)),
            *("--idle-timeout", str(limits.idle_timeout)),
            *("--max-connections", str(limits.max_connections)),
            *("--drain-seconds", str(limits.drain_seconds)),
            *("--shadow-limit", str(self.shadow_limit)),
            *("--default-timeout", str(self.default_timeout)),
            *("--remembered", str(self.remembered)),
        ]
        if self.gateway.decision_log is not None:
            arguments.append("--log-decisions")
        if self.gateway.access_log:
            arguments.append("--access-log")
        return arguments

    async def start(self, host: str, port: int, limits: WebLimits) -> None:
        """Start the child; return once it has the routes."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        await loop.create_unix_server(lambda: _ControlConnection(self), str(self.control_path))
        self.process = await asyncio.create_subprocess_exec(*self.arguments(host, port, limits))
        exited: asyncio.Future[Any] = loop.create_task(self.process.wait())
        ready: asyncio.Future[Any] = self._ready
        done, _ = await asyncio.wait(
            {ready, exited}, timeout=START_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        exited.cancel()
        if ready not in done:
            code = self.process.returncode
            raise CompiledPlaneError(f"{self.binary} did not start (exit code {code})")

    # the control connection's
    def connected(self, connection: _ControlConnection) -> None:
        self._connection = connection
        self.push()
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def disconnected(self) -> None:
        self._connection = None
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(CompiledPlaneError("the compiled data plane is gone"))
        self._answers.clear()

    def received(self, lines: bytes) -> None:
        """Whole lines from the child: decision records (JSON objects, as the decision
        log keeps them) go to the log together; anything else starts with its tag."""
        records = []
        for line in lines.splitlines(keepends=True):
            if line.startswith(b"{"):
                records.append(line)
            else:
                self._message(line[:1], orjson.loads(line[1:]))
        if records and self.gateway.decision_log is not None:
            self.gateway.decision_log.submit_lines(records)

    def _message(self, tag: bytes, message: dict[str, Any]) -> None:
        if tag == b"A":
            answer = self._answers.pop(message["ask"], None)
            if answer is not None and not answer.done():
                answer.set_result(message)
        elif tag == b"L":
            request_id, text = message["request_id"], message["message"]
            if request_id:
                log.warning("request %s: %s", request_id, text, extra=request_fields(request_id))
            else:
                log.warning("%s", text)
        elif tag == b"X":
            log_access(
                message["request_id"],
                message["method"],
                message["path"],
                message["status"],
                message["seconds"],
                version=message["version"],
            )

    # the gateway's
    def push(self) -> None:
        """Send the routes in force (at start, and after each change)."""
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.write(self.config_line())

    async def _ask(self, question: dict[str, Any]) -> dict[str, Any]:
        if self._connection is None or self._connection.transport is None:
            raise CompiledPlaneError("the compiled data plane is not connected")
        number = next(self._asks)
        answer = asyncio.get_running_loop().create_future()
        self._answers[number] = answer
        self._connection.transport.write(orjson.dumps({"ask": number, **question}) + b"\n")
        try:
            return await asyncio.wait_for(answer, ASK_SECONDS)
        finally:
            self._answers.pop(number, None)

    async def version_of(self, request_id: str) -> str | None:
        """The version that answered a recent request, if either data plane remembers it."""
        answer = await self._ask({"version_of": request_id})
        version: str | None = answer["version"]
        return version if version is not None else self.gateway.version_of(request_id)

    async def refresh_metrics(self) -> None:
        """Fold the child's counts into the gateway's metrics (before a scrape)."""
        answer = await self._ask({"metrics": True})
        self._fold.fold(answer["metrics"])

    def signal(self, number: int) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(number)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    def remove_sockets(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


async def serve_behind(
    front: CompiledPlane,
    plane: DataPlane,
    host: str,
    port: int,
    *,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    on_stop: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Serve `plane` on the unix socket the child passes requests to, with the child on
    `host:port`, until the child exits (a SIGTERM or SIGINT is passed to it); the
    child's exit code."""
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(plane.protocol, str(front.delegate_path))
    tasks = [loop.create_task(plane.sweep())]
    try:
        await front.start(host, port, plane.limits)
        loop.add_signal_handler(signal.SIGTERM, front.signal, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGINT, front.signal, signal.SIGINT)
        tasks += [loop.create_task(job()) for job in background]
        code = await front.wait()
    finally:
        front.signal(signal.SIGKILL)  # only if this process stops first
        server.close()
        for task in tasks:
            task.cancel()
        front.remove_sockets()
        if on_stop is not None:
            await on_stop()
    if code != 0:
        log.error("the compiled data plane exited with code %d", code)
    return code
