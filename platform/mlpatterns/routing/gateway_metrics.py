"""The gateway's metrics. What every answer records (its count by route, version and
status; its time; the gateway's own share of that time) is kept in plain numbers
(`meters.PlainHistogram`) and handed to prometheus_client when scraped, by a
collector, as the model server does: a `Histogram.observe` walks its buckets under
a lock, a cost the gateway would pay twice per request on the core that forwards.
The rare events (shadow faults, drops, refusals) are ordinary prometheus_client
counters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from mlpatterns.meters import LATENCY_BUCKETS, PlainHistogram, add_process_metrics

__all__ = ["AnswerMetrics", "GatewayMetrics", "SnapshotFold"]


class AnswerMetrics(Collector):
    """`mlpatterns_gateway_requests_total`, `..._request_duration_seconds` and
    `..._overhead_seconds` for one gateway."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts: dict[tuple[str, str, str, int], int] = {}
        self.seconds: dict[tuple[str, str], PlainHistogram] = {}
        self.overhead: dict[str, PlainHistogram] = {}

    def answered(
        self, service: str, route: str, version: str, status: int, seconds: float, own: float
    ) -> None:
        """Count one answer and observe its time and the gateway's own share of it."""
        key = (service, route, version, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        timings = self.seconds.get((service, version))
        if timings is None:
            timings = self.seconds[(service, version)] = PlainHistogram(self.bounds)
        timings.observe(seconds)
        share = self.overhead.get(service)
        if share is None:
            share = self.overhead[service] = PlainHistogram(self.bounds)
        share.observe(own)

    def count(self, service: str, route: str, version: str, status: int) -> None:
        """Count an answer that has no time to record (a client gone mid-body)."""
        key = (service, route, version, status)
        self.counts[key] = self.counts.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "mlpatterns_gateway_requests",
            "Requests answered, by route, version and status.",
            labels=("service", "route", "version", "status"),
        )
        for (service, route, version, status), count in list(self.counts.items()):
            requests.add_metric((service, route, version, str(status)), count)
        yield requests
        seconds = HistogramMetricFamily(
            "mlpatterns_gateway_request_duration_seconds",
            "Time to answer, upstream included.",
            labels=("service", "version"),
        )
        for labels, timings in list(self.seconds.items()):
            seconds.add_metric(labels, timings.buckets(), timings.total)
        yield seconds
        overhead = HistogramMetricFamily(
            "mlpatterns_gateway_overhead_seconds",
            "The gateway's own share of answering: the time to answer less the time "
            "spent waiting for upstreams.",
            labels=("service",),
        )
        for service, timings in list(self.overhead.items()):
            overhead.add_metric((service,), timings.buckets(), timings.total)
        yield overhead


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.answers = AnswerMetrics()
        self.registry.register(self.answers)
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
        self.breaker_refusals = Counter(
            "mlpatterns_gateway_breaker_refusals_total",
            "Requests a version's circuit breaker refused (answered 503, or by its "
            "fallback): reason full (maxConcurrent in flight) or ejected.",
            ("service", "version", "reason"),
            registry=self.registry,
        )
        self.graph_steps = Histogram(
            "mlpatterns_gateway_graph_step_seconds",
            "An inference graph's steps: each one's time, by version and outcome (ok, "
            "refused: a 4xx, error, timeout).",
            ("service", "version", "outcome"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.records_dropped = Counter(
            "mlpatterns_gateway_records_dropped_total",
            "Decision records the compiled data plane dropped: over 16 MiB of them were "
            "waiting for the gateway process.",
            registry=self.registry,
        )
        self.shadow_skipped = Counter(
            "mlpatterns_gateway_shadow_skipped_total",
            "Shadow copies not sent: the shadow kept failing (its circuit is open).",
            ("service", "version"),
            registry=self.registry,
        )


class SnapshotFold:
    """Counts made elsewhere (the compiled data plane's), folded into `metrics`: each
    snapshot is cumulative, so what it adds is what grew since the one before."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self._seen: dict[tuple[Any, ...], Any] = {}

    def _grown(self, key: tuple[Any, ...], now: Any) -> Any:
        before = self._seen.get(key)
        self._seen[key] = now
        if before is None:
            return now
        if isinstance(now, list):
            return [a - b for a, b in zip(now, before, strict=True)]
        return now - before

    def fold(self, snapshot: dict[str, Any]) -> None:
        answers, metrics = self.metrics.answers, self.metrics
        for service, route, version, status, count in snapshot["requests"]:
            key = (service, route, version, status)
            grown = self._grown(("requests", *key), count)
            answers.counts[key] = answers.counts.get(key, 0) + grown
        for service, version, counts, total in snapshot["seconds"]:
            timings = answers.seconds.setdefault((service, version), PlainHistogram(answers.bounds))
            grown = self._grown(("seconds", service, version), [*counts, total])
            timings.add(grown[:-1], grown[-1])
        for service, counts, total in snapshot["overhead"]:
            share = answers.overhead.setdefault(service, PlainHistogram(answers.bounds))
            grown = self._grown(("overhead", service), [*counts, total])
            share.add(grown[:-1], grown[-1])
        for service, version, count in snapshot["shadow_errors"]:
            grown = self._grown(("shadow_errors", service, version), count)
            metrics.shadow_errors.labels(service, version).inc(grown)
        for service, version, count in snapshot["shadow_skipped"]:
            grown = self._grown(("shadow_skipped", service, version), count)
            metrics.shadow_skipped.labels(service, version).inc(grown)
        for service, count in snapshot["mirror_drops"]:
            metrics.mirror_drops.labels(service).inc(self._grown(("mirror_drops", service), count))
        metrics.records_dropped.inc(self._grown(("records_dropped",), snapshot["records_dropped"]))
        for service, version, reason, count in snapshot["breaker_refusals"]:
            grown = self._grown(("breaker_refusals", service, version, reason), count)
            metrics.breaker_refusals.labels(service, version, reason).inc(grown)
