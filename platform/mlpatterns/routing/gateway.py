"""The mlpatterns gateway: executes a route table over HTTP, in front of one model
server per version (the embedded mode, and clusters without Istio).

Every request is decided (`decide`), forwarded to its version with
`x-mlpatterns-route` set, and answered with `x-mlpatterns-version` and
`x-request-id`. A shadow copy goes out fire-and-forget, at most `shadow_limit` at a
time (beyond that the copy is dropped and counted), with its Host marked `-shadow`
as Envoy marks mirrored requests; its answer, errors and slowness never reach the
client, and a shadow that keeps failing stops receiving copies for a while
(`breaker.py`), so a dead shadow does not tax every request. The table can be
swapped while requests are in flight: each request keeps the table it was decided
with. Each decision is logged off the request path (for
the A/B report), and a version's threshold is applied to binary models' answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import Receive, Scope, Send
from yarl import URL

from mlpatterns import web
from mlpatterns.logsetup import log_access, request_fields
from mlpatterns.logstreams import RecordLog
from mlpatterns.meters import LATENCY_BUCKETS, add_process_metrics
from mlpatterns.routing import thresholds
from mlpatterns.routing.breaker import ShadowBreaker
from mlpatterns.routing.decide import Decision, decide
from mlpatterns.routing.istio import ROUTE_HEADER
from mlpatterns.routing.messages import (
    Answer,
    Outgoing,
    answered_headers,
    error_answer,
    forwarded_headers,
    parse_upstreams,
    upstream_url,
)
from mlpatterns.routing.table import RouteTable

__all__ = ["Gateway", "GatewayMetrics", "log"]

log = logging.getLogger("mlpatterns.gateway")


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
            buckets=LATENCY_BUCKETS,
        )
        self.overhead = Histogram(
            "mlpatterns_gateway_overhead_seconds",
            "The gateway's own share of answering: the time to answer less the time "
            "spent waiting for upstreams.",
            ("service",),
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        add_process_metrics(self.registry)
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
        self.shadow_skipped = Counter(
            "mlpatterns_gateway_shadow_skipped_total",
            "Shadow copies not sent: the shadow kept failing (its circuit is open).",
            ("service", "version"),
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
        decision_log: RecordLog | None = None,
        remembered: int = 100_000,
        shadow_breaker: ShadowBreaker | None = None,
        max_body_bytes: int = web.WebLimits.max_body_bytes,
        access_log: bool = False,
    ) -> None:
        self.table = table
        self.access_log = access_log
        self.upstreams = parse_upstreams(upstreams)
        self.max_body_bytes = max_body_bytes
        self.metrics = GatewayMetrics()
        self.decision_log = decision_log
        self._shadow_slots = asyncio.Semaphore(shadow_limit)
        self._shadow_breaker = shadow_breaker or ShadowBreaker()
        self._default_timeout = default_timeout
        self._clock = clock
        self._draw = draw
        self._session: aiohttp.ClientSession | None = None
        self._shadows: set[asyncio.Task[None]] = set()
        # request id -> version, for feedback that arrives later (bounded, oldest out)
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._remembered = remembered

    def replace_table(self, table: RouteTable, upstreams: Mapping[str, str] | None = None) -> None:
        """Swap the routes; requests already decided finish with the table they had."""
        missing = set(table.versions) - set(upstreams or self.upstreams)
        if missing:
            raise ValueError(f"no upstream for versions {sorted(missing)}")
        if upstreams is not None:
            self.upstreams = parse_upstreams(upstreams)
        self.table = table

    def version_of(self, request_id: str) -> str | None:
        """The version that answered a recent request, if this gateway remembers it."""
        return self._recent.get(request_id)

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
        if self.decision_log is not None:
            self.decision_log.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The proxy as a bare ASGI app: no framework between the socket and the
        upstream call, since this runs for every request."""
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if not raw_path.startswith(b"/"):  # "*@host:port/..." must never become a URL
            message = "the request target must be a path starting with /"
            await error_answer(400, message, web.new_request_id(), "").send(send)
            return
        try:
            body = await web.read_body(scope, receive, self.max_body_bytes)
        except web.BodyTooLarge as error:
            await error_answer(413, str(error), web.new_request_id(), "").send(send)
            return
        except web.ClientGone:  # nothing forwarded, nothing logged: there is no one to answer
            self.metrics.requests.labels(self.table.service, "", "", "499").inc()
            return
        headers = forwarded_headers(scope["headers"])
        query = scope.get("query_string", b"").decode("latin-1")
        answer = await self.route(
            scope["method"], scope["path"], query, headers, body, raw_path.decode("latin-1")
        )
        await answer.send(send)

    async def route(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        raw_path: str | None = None,
    ) -> Answer:
        """Decide, forward (and mirror), answer; `headers` have lowercase names, `path`
        is decoded (what rules match), `raw_path` as sent (what the upstream gets)."""
        started = time.perf_counter()
        table = self.table  # this request's table, whatever a reload does meanwhile
        request_id = web.request_id(headers.get("x-request-id"))
        decision = decide(table, headers, path, self._clock(), self._draw(), self._draw())
        headers["x-request-id"] = request_id
        headers[ROUTE_HEADER] = decision.version
        outgoing = Outgoing(method, raw_path or path, query, headers, body)
        if decision.shadow is not None:
            self._send_shadow(table, decision.shadow, outgoing)
        policy = table.policies.get(decision.version)
        threshold = policy.threshold if policy else None
        if threshold is not None and thresholds.applies(path):
            upstream_path = thresholds.upstream_path(path)
            answer = await self._forward(
                table, decision, Outgoing(method, upstream_path, query, headers, body)
            )
            answer = _with_threshold(answer, path, threshold)
        else:
            answer = await self._forward(table, decision, outgoing)
        answer.headers["x-request-id"] = request_id
        # the ModelService's version name; the model server's own version passes on
        if "x-mlpatterns-version" in answer.headers:
            answer.headers["x-mlpatterns-model-version"] = answer.headers["x-mlpatterns-version"]
        answer.headers["x-mlpatterns-version"] = decision.version
        elapsed = time.perf_counter() - started
        self._remember(request_id, decision.version)
        self._log(table, decision, request_id, answer.status, elapsed)
        self.metrics.requests.labels(
            table.service, decision.route, decision.version, str(answer.status)
        ).inc()
        self.metrics.seconds.labels(table.service, decision.version).observe(elapsed)
        self.metrics.overhead.labels(table.service).observe(elapsed - answer.upstream_seconds)
        if self.access_log:
            log_access(request_id, method, path, answer.status, elapsed, version=decision.version)
        return answer

    def _remember(self, request_id: str, version: str) -> None:
        self._recent[request_id] = version
        if len(self._recent) > self._remembered:
            self._recent.popitem(last=False)

    def _log(
        self, table: RouteTable, decision: Decision, request_id: str, status: int, elapsed: float
    ) -> None:
        if self.decision_log is None:
            return
        self.decision_log.submit(
            {
                "request_id": request_id,
                "service": table.service,
                "route": decision.route,
                "version": decision.version,
                "shadow": decision.shadow,
                "phase": table.phase,
                "status": status,
                "latency_seconds": round(elapsed, 6),
                "timestamp": datetime.now(UTC).isoformat(),
            }
        )

    async def _forward(self, table: RouteTable, decision: Decision, out: Outgoing) -> Answer:
        policy = table.policies.get(decision.version)
        timeout = (policy.timeout_seconds if policy else None) or self._default_timeout
        attempts = 1 + ((policy.retries if policy else None) or 0)
        url = upstream_url(self.upstreams[decision.version], out)
        started = time.perf_counter()
        answer = await self._attempts(decision, out, url, attempts, timeout)
        answer.upstream_seconds = time.perf_counter() - started
        return answer

    async def _attempts(
        self, decision: Decision, out: Outgoing, url: URL, attempts: int, timeout: float
    ) -> Answer:
        """The upstream's answer, tried at most `attempts` times (faults only), or the
        gateway's own 503 or 504."""
        request_id = out.headers["x-request-id"]
        limit = aiohttp.ClientTimeout(total=timeout)
        for attempt in range(attempts):  # a bounded retry budget, for faults, not refusals
            last = attempt == attempts - 1
            try:
                async with self.session.request(
                    out.method, url, headers=out.headers, data=out.body, timeout=limit
                ) as answer:
                    content = await answer.read()
                    status = answer.status
                    passed = answered_headers(answer.headers)
            except TimeoutError:
                if last:
                    message = f"version {decision.version} did not answer in {timeout:g} s"
                    fields = request_fields(request_id)
                    log.warning("request %s: %s", request_id, message, extra=fields)
                    return error_answer(504, message, request_id, decision.version)
                continue
            except aiohttp.ClientError as error:
                if last:  # where and why for the log; the client learns neither address
                    log.warning(
                        "request %s: version %s at %s is unavailable: %r",
                        request_id,
                        decision.version,
                        url.origin(),
                        error,
                        extra=request_fields(request_id),
                    )
                    message = f"version {decision.version} is unavailable"
                    return error_answer(503, message, request_id, decision.version)
                continue
            if status >= 500:
                if not last:
                    continue
                log.warning(
                    "request %s: version %s answered %d",
                    request_id,
                    decision.version,
                    status,
                    extra=request_fields(request_id),
                )
            return Answer(status, passed, content)
        raise AssertionError("the loop always returns")

    def _send_shadow(self, table: RouteTable, shadow: str, out: Outgoing) -> None:
        if self._shadow_slots.locked():
            self.metrics.mirror_drops.labels(table.service).inc()
            return
        if not self._shadow_breaker.allow(shadow):
            self.metrics.shadow_skipped.labels(table.service, shadow).inc()
            return
        copy = {**out.headers, ROUTE_HEADER: shadow, "host": f"{table.service}-shadow"}

        async def send() -> None:
            failed = True  # also when cancelled at shutdown: a probe must not stay pending
            async with self._shadow_slots:
                try:
                    async with self.session.request(
                        out.method,
                        upstream_url(self.upstreams[shadow], out),
                        headers=copy,
                        data=out.body,
                        timeout=aiohttp.ClientTimeout(total=self._default_timeout),
                    ) as answer:
                        await answer.read()
                        failed = answer.status >= 500  # a 4xx is the request's fault
                except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                    pass  # the shadow's fault: counted
                except (aiohttp.ClientError, ValueError):
                    failed = False  # the request could not be sent as given: not the shadow's
                finally:
                    self._shadow_breaker.record(shadow, not failed)
                if failed:
                    self.metrics.shadow_errors.labels(table.service, shadow).inc()

        task = asyncio.get_running_loop().create_task(send())
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)


def _with_threshold(answer: Answer, path: str, threshold: float) -> Answer:
    if answer.status != 200:
        return answer
    try:
        parsed = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return answer
    if not isinstance(parsed, dict) or "probabilities" not in parsed:
        return answer
    body, applied = thresholds.rewrite(path, parsed, threshold)
    headers = {**answer.headers, "content-type": "application/json"}
    headers["x-mlpatterns-threshold"] = f"{threshold:g}" if applied else "not-binary"
    return Answer(200, headers, orjson.dumps(body))
