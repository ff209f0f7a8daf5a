"""The mlpatterns gateway: executes a route table over HTTP, in front of one model
server per version (the embedded mode, and clusters without Istio).

Every request is decided (`decide`), forwarded to its version with
`x-mlpatterns-route` set, and answered with `x-mlpatterns-version` and
`x-request-id`. A shadow copy goes out fire-and-forget, at most `shadow_limit` at a
time (beyond that the copy is dropped and counted), with its Host marked `-shadow`
as Envoy marks mirrored requests; its answer, errors and slowness never reach the
client. The table can be swapped while requests are in flight: each request keeps
the table it was decided with. The gateway's own endpoints live under `/-/`.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlpatterns.routing.decide import Decision, decide
from mlpatterns.routing.istio import ROUTE_HEADER
from mlpatterns.routing.table import RouteTable

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
    "content-length",
}
MAX_BODY_BYTES = 4 << 20


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "mlpatterns_gateway_requests_total",
            "Requests answered, by route, version and status.",
            ("service", "route", "version", "status"),
            registry=self.registry,
        )
        self.seconds = Histogram(
            "mlpatterns_gateway_request_duration_seconds",
            "Time to answer, upstream included.",
            ("service", "version"),
            registry=self.registry,
        )
        self.shadow_errors = Counter(
            "mlpatterns_gateway_shadow_errors_total",
            "Shadow copies that failed or answered 5xx.",
            ("service", "version"),
            registry=self.registry,
        )
        self.mirror_drops = Counter(
            "mlpatterns_gateway_mirror_drops_total",
            "Shadow copies not sent: too many in flight.",
            ("service",),
            registry=self.registry,
        )


class Gateway:
    def __init__(
        self,
        table: RouteTable,
        upstreams: Mapping[str, str],
        *,
        shadow_limit: int = 64,
        default_timeout: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.table = table
        self.upstreams = dict(upstreams)
        self.metrics = GatewayMetrics()
        self._shadow_slots = asyncio.Semaphore(shadow_limit)
        self._default_timeout = default_timeout
        self._clock = clock
        self._draw = draw
        self._session: aiohttp.ClientSession | None = None
        self._shadows: set[asyncio.Task[None]] = set()

    def replace_table(self, table: RouteTable, upstreams: Mapping[str, str] | None = None) -> None:
        """Swap the routes; requests already decided finish with the table they had."""
        missing = set(table.versions) - set(upstreams or self.upstreams)
        if missing:
            raise ValueError(f"no upstream for versions {sorted(missing)}")
        if upstreams is not None:
            self.upstreams = dict(upstreams)
        self.table = table

    @property
    def session(self) -> aiohttp.ClientSession:
        # aiohttp rather than httpx: httpx's async pool slowed to ~40 ms a request
        # under 16 concurrent connections here, aiohttp's does not
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=512, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._shadows:
            await asyncio.wait(self._shadows, timeout=5)
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        table = self.table  # this request's table, whatever a reload does meanwhile
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"the request body exceeds {MAX_BODY_BYTES} bytes", request_id, "")
        headers = {k: v for k, v in request.headers.items() if k not in HOP_BY_HOP}
        decision = decide(
            table, headers, request.url.path, self._clock(), self._draw(), self._draw()
        )
        headers.update({"x-request-id": request_id, ROUTE_HEADER: decision.version})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if decision.shadow is not None:
            self._send_shadow(table, decision, request.method, target, headers, body)
        response = await self._forward(table, decision, request.method, target, headers, body)
        response.headers["x-request-id"] = request_id
        # the ModelService's version name; the model server's own version passes on
        if "x-mlpatterns-version" in response.headers:
            response.headers["x-mlpatterns-model-version"] = response.headers[
                "x-mlpatterns-version"
            ]
        response.headers["x-mlpatterns-version"] = decision.version
        self.metrics.requests.labels(
            table.service, decision.route, decision.version, str(response.status_code)
        ).inc()
        self.metrics.seconds.labels(table.service, decision.version).observe(
            time.perf_counter() - started
        )
        return response

    async def _forward(
        self,
        table: RouteTable,
        decision: Decision,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        policy = table.policies.get(decision.version)
        timeout = (policy.timeout_seconds if policy else None) or self._default_timeout
        attempts = 1 + ((policy.retries if policy else None) or 0)
        url = self.upstreams[decision.version] + target
        request_id = headers["x-request-id"]
        limit = aiohttp.ClientTimeout(total=timeout)
        for attempt in range(attempts):  # a bounded retry budget, for faults, not refusals
            last = attempt == attempts - 1
            try:
                async with self.session.request(
                    method, url, headers=headers, data=body, timeout=limit
                ) as answer:
                    content = await answer.read()
                    status = answer.status
                    passed = {
                        k: v
                        for k, v in answer.headers.items()
                        if k.lower() not in HOP_BY_HOP | {"content-encoding"}
                    }
            except TimeoutError:
                if last:
                    message = f"version {decision.version} did not answer in {timeout:g} s"
                    return _error(504, message, request_id, decision.version)
                continue
            except aiohttp.ClientError as error:
                if last:
                    message = f"version {decision.version} is unavailable: {error}"
                    return _error(503, message, request_id, decision.version)
                continue
            if status >= 500 and not last:
                continue
            return Response(content, status, headers=passed)
        raise AssertionError("the loop always returns")

    def _send_shadow(
        self,
        table: RouteTable,
        decision: Decision,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        assert decision.shadow is not None
        if self._shadow_slots.locked():
            self.metrics.mirror_drops.labels(table.service).inc()
            return
        shadow = decision.shadow
        copy = {**headers, ROUTE_HEADER: shadow, "host": f"{table.service}-shadow"}

        async def send() -> None:
            async with self._shadow_slots:
                try:
                    async with self.session.request(
                        method,
                        self.upstreams[shadow] + target,
                        headers=copy,
                        data=body,
                        timeout=aiohttp.ClientTimeout(total=self._default_timeout),
                    ) as answer:
                        await answer.read()
                        failed = answer.status >= 500
                except (aiohttp.ClientError, TimeoutError):
                    failed = True
                if failed:
                    self.metrics.shadow_errors.labels(table.service, shadow).inc()

        task = asyncio.get_running_loop().create_task(send())
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)


def _error(status: int, message: str, request_id: str, version: str) -> Response:
    headers = {"x-request-id": request_id}
    if version:
        headers["x-mlpatterns-version"] = version
    return Response(
        orjson.dumps({"error": message}), status, headers=headers, media_type="application/json"
    )


def create_gateway_app(
    gateway: Gateway, reload: Callable[[], bool] | None = None, reload_every: float = 1.0
) -> Starlette:
    """The gateway's app; `reload()` is polled (e.g. a watched ModelService file)."""

    async def routes(request: Request) -> Response:
        table = gateway.table
        body = {
            "service": table.service,
            "routes": [
                {"name": r.name, "destinations": {d.version: d.weight for d in r.destinations}}
                for r in table.routes
            ],
            "shadow": list(table.mirror) if table.mirror else None,
            "sticky": table.sticky_header,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b'{"status": "ok"}', media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(
            generate_latest(gateway.metrics.registry), media_type="text/plain; version=0.0.4"
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watcher = None
        if reload is not None:

            async def watch() -> None:
                while True:
                    await asyncio.sleep(reload_every)
                    reload()

            watcher = asyncio.get_running_loop().create_task(watch())
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            await gateway.close()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/-/routes", routes, methods=["GET"]),
            Route("/-/health", health, methods=["GET"]),
            Route("/-/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", gateway.handle, methods=methods),
        ],
        lifespan=lifespan,
    )
