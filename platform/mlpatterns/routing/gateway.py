"""The mlpatterns gateway: executes a route table over HTTP, in front of one model
server per version (the embedded mode, and clusters without Istio).

Every request is decided (`decide`), forwarded to its version with
`x-mlpatterns-route` set, and answered with `x-mlpatterns-version` and
`x-request-id`; the body passes through untouched, over kept-alive connections
(`upstream.py`). A shadow copy goes out fire-and-forget, at most `shadow_limit` at a
time (beyond that the copy is dropped and counted), with its Host marked `-shadow`
as Envoy marks mirrored requests; its answer, errors and slowness never reach the
client, and a shadow that keeps failing stops receiving copies for a while
(`breaker.py`), so a dead shadow does not tax every request. A follow-up (multiple-
stage prediction) is such a copy, to the heavy version's asynchronous API, and the
answer names where its result will be (`x-mlpatterns-follow-up: /jobs/<request id>`).
The table can be
swapped while requests are in flight: each request keeps the table it was decided
with. Each decision is logged off the request path (for
the A/B report), and a version's threshold is applied to binary models' answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from mlpatterns import web
from mlpatterns.api.stages import JOBS_PREFIX
from mlpatterns.logsetup import log_access, request_fields
from mlpatterns.logstreams import RecordLog
from mlpatterns.routing import thresholds
from mlpatterns.routing.breaker import Breaker, CircuitBreakers, Refusal
from mlpatterns.routing.decide import Decision, decide
from mlpatterns.routing.gateway_graph import (
    GRAPH_VERSION,
    graph_answer,
    graph_call,
    graph_refusal,
    steps_header,
)
from mlpatterns.routing.gateway_metrics import GatewayMetrics
from mlpatterns.routing.graph import run_graph
from mlpatterns.routing.istio import ROUTE_HEADER
from mlpatterns.routing.messages import (
    HOP_BY_HOP,
    PASSED_OVER,
    Answer,
    Incoming,
    answered_headers,
    error_answer,
    forwarded_headers,
    parse_upstreams,
    request_head,
    upstream_target,
)
from mlpatterns.routing.recent import RecentVersions
from mlpatterns.routing.table import RouteTable, VersionPolicy
from mlpatterns.routing.upstream import (
    UpstreamError,
    UpstreamPool,
    UpstreamTimeout,
    pools_for,
)

__all__ = ["CLIENT_HEADER", "FOLLOW_UP_HEADER", "OWN_HEADERS", "Gateway", "log"]

log = logging.getLogger("mlpatterns.gateway")


_ROUTE = ROUTE_HEADER.encode()
FOLLOW_UP_HEADER = b"x-mlpatterns-follow-up"  # where the follow-up's answer will be
CLIENT_HEADER = b"x-mlpatterns-client"  # the client's address, as the compiled data plane saw it
OWN_HEADERS = frozenset(  # set by the gateway only: never taken from a client or an upstream
    {b"x-request-id", b"x-mlpatterns-version", _ROUTE, FOLLOW_UP_HEADER, CLIENT_HEADER}
)
_NOT_FORWARDED = HOP_BY_HOP | OWN_HEADERS
_NOT_PASSED_ON = PASSED_OVER | OWN_HEADERS
_NO_HEADERS: dict[str, str] = {}  # what decides when the table reads no header
_NO_CLOCK = datetime.fromtimestamp(0, UTC)  # ... and when it reads no time


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
        shadow_breaker: Breaker | None = None,
        access_log: bool = False,
    ) -> None:
        self.table = table
        self.upstreams = dict(upstreams)
        self.access_log = access_log
        self._pools = pools_for(parse_upstreams(upstreams), {})
        self._listeners: list[Callable[[], None]] = []
        self.metrics = GatewayMetrics()
        self.decision_log = decision_log
        self._shadow_limit = shadow_limit
        self._shadow_breaker = shadow_breaker or Breaker()
        self._breakers = CircuitBreakers()
        self._default_timeout = default_timeout
        self._clock = clock
        self._draw = draw
        self._shadows: set[asyncio.Task[None]] = set()
        self._recent = RecentVersions(remembered)  # for feedback that arrives later

    def replace_table(self, table: RouteTable, upstreams: Mapping[str, str] | None = None) -> None:
        """Swap the routes; requests already decided finish with the table they had."""
        missing = set(table.versions) - set(upstreams or self._pools)
        if missing:
            raise ValueError(f"no upstream for versions {sorted(missing)}")
        if upstreams is not None:
            kept = {pool.origin: pool for pool in self._pools.values()}
            self._pools = pools_for(parse_upstreams(upstreams), kept)
            used = {id(pool) for pool in self._pools.values()}
            for pool in kept.values():
                if id(pool) not in used:
                    pool.close()
            self.upstreams = dict(upstreams)
        self.table = table
        for listener in self._listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each `replace_table` (the compiled data plane follows)."""
        self._listeners.append(listener)

    def version_of(self, request_id: str) -> str | None:
        """The version that answered a recent request, if this gateway remembers it."""
        return self._recent.get(request_id)

    def client_gone(self) -> None:
        """A client closed its connection mid-body: nothing was forwarded."""
        self.metrics.answers.count(self.table.service, "", "", 499)

    async def close(self) -> None:
        if self._shadows:
            await asyncio.wait(self._shadows, timeout=5)
        for pool in self._pools.values():
            pool.close()
        if self.decision_log is not None:
            self.decision_log.close()

    async def route(self, request: Incoming) -> Answer:
        """Decide, forward (and mirror), answer."""
        started = time.perf_counter()
        table = self.table  # this request's table, whatever a reload does meanwhile
        path = request.path
        request_id = web.request_id(request.given_id)
        if table.graph is not None:
            return await self._graph(table, request, request_id, started)
        headers = request.headers if table.reads_headers else _NO_HEADERS
        now = self._clock() if table.reads_clock else _NO_CLOCK
        decision = decide(table, headers, path, now, self._draw(), self._draw())
        policy = table.policies.get(decision.version)
        refused = None
        if policy is not None and policy.breaker is not None:
            target, refusal = self._breakers.admit(decision.version, policy.breaker, table)
            if refusal is not None:
                refused = self._refused(table, decision.version, refusal, target)
            if target is not None and target != decision.version:
                decision, policy = decision._replace(version=target), table.policies[target]
        given_id, version = request_id.encode(), decision.version.encode()
        forwarded = forwarded_headers(request.raw_headers, _NOT_FORWARDED)
        forwarded.append((b"x-request-id", given_id))
        if decision.shadow is not None:
            self._send_shadow(table, decision.shadow, request, forwarded)
        forwarded.append((_ROUTE, version))
        threshold = policy.threshold if policy is not None else None
        applied = threshold is not None and thresholds.applies(path)
        raw_path = thresholds.upstream_path(path).encode() if applied else request.raw_path
        breaker = policy.breaker if policy is not None else None
        if refused is not None:
            answer = refused
        elif breaker is None:
            answer = await self._forward(
                decision.version, policy, request, raw_path, forwarded, request_id
            )
        else:  # counted in the version's requests in flight and failures in a row
            status = None
            self._breakers.started(decision.version)
            try:
                answer = await self._forward(
                    decision.version, policy, request, raw_path, forwarded, request_id
                )
                status = answer.status
            finally:
                self._breakers.finished(decision.version, breaker, status)
        if applied:
            assert threshold is not None
            answer = thresholds.applied(answer, path, threshold)
        if decision.shadow is not None and decision.shadow == table.follow_up:
            answer.headers.append((FOLLOW_UP_HEADER, JOBS_PREFIX.encode() + given_id))
        return self._answered(
            table, request, request_id, given_id, decision, answer, started, version
        )

    def _answered(
        self,
        table: RouteTable,
        request: Incoming,
        request_id: str,
        given_id: bytes,
        decision: Decision,
        answer: Answer,
        started: float,
        named: bytes,
    ) -> Answer:
        """`answer` with the request id (`given_id`, encoded) and the version(s) `named`,
        remembered, logged and counted."""
        answer.headers += ((b"x-request-id", given_id), (b"x-mlpatterns-version", named))
        elapsed = time.perf_counter() - started
        self._recent.add(request_id, decision.version)
        self._log(table, decision, request_id, answer.status, elapsed)
        self.metrics.answers.answered(
            table.service,
            decision.route,
            decision.version,
            answer.status,
            elapsed,
            elapsed - answer.upstream_seconds,
        )
        if self.access_log:
            log_access(
                request_id,
                request.method,
                request.path,
                answer.status,
                elapsed,
                version=named.decode(),
            )
        return answer

    async def _graph(
        self, table: RouteTable, request: Incoming, request_id: str, started: float
    ) -> Answer:
        """An inference graph's answer: its steps run through this gateway's pools."""
        assert table.graph is not None
        answer = graph_refusal(request, table.service)
        versions = GRAPH_VERSION
        if answer is None:
            call = graph_call(self._pools, request_id)
            result = await run_graph(table.graph, request.body, call)
            answer = graph_answer(request.path, result)
            answer.headers.append((b"x-mlpatterns-graph", steps_header(result)))
            versions = ",".join(result.answered_by) or GRAPH_VERSION
            for step in result.steps:
                labels = (table.service, step.version, step.outcome)
                self.metrics.graph_steps.labels(*labels).observe(step.seconds)
                if step.outcome in ("error", "timeout"):
                    log.warning(
                        "request %s: graph step %s: %s",
                        request_id,
                        step.version,
                        step.error,
                        extra=request_fields(request_id),
                    )
            answer.upstream_seconds = min(
                sum(s.seconds for s in result.steps), time.perf_counter() - started
            )
        # remembered, logged and counted as the graph's: feedback on it names the graph
        decision = Decision(GRAPH_VERSION, GRAPH_VERSION, None)
        given_id = request_id.encode()
        return self._answered(
            table, request, request_id, given_id, decision, answer, started, versions.encode()
        )

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
                "timestamp": self._clock(),  # orjson writes it as ISO 8601
            }
        )

    async def _forward(
        self,
        version: str,
        policy: VersionPolicy | None,
        request: Incoming,
        raw_path: bytes,
        headers: list[tuple[bytes, bytes]],
        request_id: str,
    ) -> Answer:
        """The upstream's answer, tried at most 1 + the version's retries times (faults
        only, never refusals), or the gateway's own 503 or 504."""
        timeout = (policy.timeout_seconds if policy else None) or self._default_timeout
        attempts = 1 + ((policy.retries if policy else None) or 0)
        pool = self._pools[version]
        origin = pool.origin
        target = upstream_target(origin.prefix, raw_path, request.query)
        head = request_head(request.method, target, origin.host_header, headers, len(request.body))
        head_only = request.method == "HEAD"
        started = time.perf_counter()
        for attempt in range(attempts):  # a bounded retry budget, for faults, not refusals
            last = attempt == attempts - 1
            try:
                upstream = await pool.request(head, request.body, timeout, head_only)
            except UpstreamTimeout:
                if not last:
                    continue
                message = f"version {version} did not answer in {timeout:g} s"
                log.warning("request %s: %s", request_id, message, extra=request_fields(request_id))
                answer = error_answer(504, message, "", "")
                break
            except UpstreamError as error:
                if not last:
                    continue
                log.warning(  # where and why for the log; the client learns neither address
                    "request %s: version %s at %s is unavailable: %s",
                    request_id,
                    version,
                    origin.url,
                    error,
                    extra=request_fields(request_id),
                )
                answer = error_answer(503, f"version {version} is unavailable", "", "")
                break
            if upstream.status >= 500 and not last:
                continue
            if upstream.status >= 500:
                log.warning(
                    "request %s: version %s answered %d",
                    request_id,
                    version,
                    upstream.status,
                    extra=request_fields(request_id),
                )
            answer = Answer(upstream.status, _passed_on(upstream.headers), upstream.body)
            if head_only:
                answer.length = web.declared_length(upstream.headers) or 0
            break
        answer.upstream_seconds = time.perf_counter() - started
        return answer

    def _refused(
        self, table: RouteTable, version: str, refusal: Refusal, target: str | None
    ) -> Answer | None:
        """Count a circuit breaker's refusal; the 503 to answer unless `target` (the
        fallback) takes the request."""
        self.metrics.breaker_refusals.labels(table.service, version, refusal.reason).inc()
        if target is not None:
            return None
        state = "full" if refusal.reason == "full" else "ejected after failing"
        after = refusal.retry_after
        answer = error_answer(503, f"version {version} is {state}; retry in {after} s", "", "")
        answer.headers.append((b"retry-after", str(after).encode()))
        return answer

    def _send_shadow(
        self,
        table: RouteTable,
        shadow: str,
        request: Incoming,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        if len(self._shadows) >= self._shadow_limit:
            self.metrics.mirror_drops.labels(table.service).inc()
            return
        if not self._shadow_breaker.allow(shadow):
            self.metrics.shadow_skipped.labels(table.service, shadow).inc()
            return
        pool = self._pools[shadow]
        origin = pool.origin
        head = request_head(
            request.method,
            upstream_target(origin.prefix, request.raw_path, request.query),
            f"{table.service}-shadow".encode(),  # as Envoy marks mirrored requests
            [*headers, (_ROUTE, shadow.encode())],
            len(request.body),
        )
        task = asyncio.get_running_loop().create_task(
            self._shadow(table.service, shadow, pool, head, request)
        )
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(
        self, service: str, shadow: str, pool: UpstreamPool, head: bytes, request: Incoming
    ) -> None:
        failed = True  # also when cancelled at shutdown: a probe must not stay pending
        try:
            answer = await pool.request(
                head, request.body, self._default_timeout, request.method == "HEAD"
            )
            failed = answer.status >= 500  # a 4xx is the request's fault
        except (UpstreamError, UpstreamTimeout):
            pass  # the shadow's fault: counted
        finally:
            self._shadow_breaker.record(shadow, not failed)
        if failed:
            self.metrics.shadow_errors.labels(service, shadow).inc()


def _passed_on(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's answer headers as the client gets them: the model server's own
    version renamed, since `x-mlpatterns-version` names the ModelService's version."""
    passed = []
    for name, value in raw:  # one pass: this runs for every answer
        if name not in _NOT_PASSED_ON:
            passed.append((name, value))
        elif name == b"x-mlpatterns-version":
            passed.append((b"x-mlpatterns-model-version", value))
        elif name == b"connection":  # it names more headers to drop: the general way
            return _passed_on(answered_headers(raw, _NOT_PASSED_ON - {b"x-mlpatterns-version"}))
    return passed
