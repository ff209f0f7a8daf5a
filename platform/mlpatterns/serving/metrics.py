"""Prometheus metrics of a model server: names prefixed `mlpatterns_`, base units,
labels `service` and `version` (and `endpoint`, `status`, `class` where they apply).
Each server has its own registry, so tests and several apps in one process do not mix.

What every request touches (request count and latency, in-flight requests, batch
size, inference time, predictions by class, the rows kept for drift) is kept in plain
numbers and turned
into metric families only when `/metrics` is scraped: prometheus_client's own
metrics take a lock on every increment, several times per request. Only the event
loop's thread writes these numbers, and the scrape runs on that thread too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Info, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from mlpatterns.meters import LATENCY_BUCKETS, PlainHistogram, add_process_metrics
from mlpatterns.registry.metadata import Profile
from mlpatterns.serving.drift_window import DriftWindow
from mlpatterns.serving.inputs import Rows

__all__ = ["BATCH_BUCKETS", "DRIFT_SAMPLE", "ServerMetrics"]

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
DRIFT_SAMPLE = 8  # one request in this many goes into the drift window


class ServerMetrics:
    def __init__(self, service: str, version: str, profile: Profile | None = None) -> None:
        self.registry = CollectorRegistry()
        self.service, self.version = service, version
        # drift against the model's training profile, measured when scraped
        self.drift = DriftWindow(profile) if profile is not None else None
        self._watched = 0
        self._in_flight = 0
        self._requests: dict[tuple[str, int], int] = {}  # (endpoint, status) -> answered
        self._latency: dict[tuple[str, int], PlainHistogram] = {}  # (endpoint, status) ->
        self._inference = PlainHistogram(LATENCY_BUCKETS)
        self._batch = PlainHistogram(BATCH_BUCKETS)
        self._by_class: dict[str, int] = {}  # bounded: the model's classes
        self._inferences = {True: [0, 0.0], False: [0, 0.0]}  # succeeded? -> count, seconds
        self._last_run = 0.0  # when the model last ran (epoch seconds)
        self._rewards: list[float] = [0, 0.0]  # Seldon feedback: count, sum of rewards
        self._cache = {True: 0, False: 0}  # the prediction cache: hit? -> lookups
        self._features = {True: 0, False: 0}  # the data cache: hit? -> entities looked up
        self.registry.register(self)
        add_process_metrics(self.registry)
        # counted on the loop (a full log buffer) and on the log's writer thread (records
        # a sink failed to take), so prometheus_client's own, locking counter; it is rare
        self.log_dropped = Counter(
            "mlpatterns_prediction_log_dropped_total",
            "Prediction log records dropped because the log queue was full.",
            ("service", "version"),
            registry=self.registry,
        )
        self.dropped = self.log_dropped.labels(service, version)
        self.model = Info(
            "mlpatterns_model", "The model this server serves.", registry=self.registry
        )

    def describe_model(self, name: str, version: str, digest: str) -> None:
        self.model.info({"name": name, "version": version, "digest": digest})

    def started(self) -> None:
        self._in_flight += 1

    def finished(self) -> None:
        self._in_flight -= 1

    def observe_batch(self, rows: int, seconds: float) -> None:
        self._batch.observe(rows)
        self._inference.observe(seconds)
        self._last_run = time.time()

    def observe_inference(self, succeeded: bool, seconds: float) -> None:
        """One request's rows through the model (queue and run), or its failure there."""
        outcome = self._inferences[succeeded]
        outcome[0] += 1
        outcome[1] += seconds

    def observe_feedback(self, reward: float) -> None:
        self._rewards[0] += 1
        self._rewards[1] += reward

    def statistics(self, name: str, version: str) -> dict[str, object]:
        """The model's statistics as the protocol's statistics extension has them (what is
        not measured here, such as queue time apart from run time, is left out)."""

        def duration(count: float, seconds: float) -> dict[str, int]:
            return {"count": int(count), "ns": round(seconds * 1e9)}

        runs = sum(self._inference.counts)
        return {
            "name": name,
            "version": version,
            "last_inference": round(self._last_run * 1000),
            "inference_count": int(self._batch.total),
            "execution_count": runs,
            "inference_stats": {
                "success": duration(*self._inferences[True]),
                "fail": duration(*self._inferences[False]),
                "compute_infer": duration(runs, self._inference.total),
            },
            "batch_stats": [],
        }

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(key)
        if latency is None:
            latency = self._latency[key] = PlainHistogram(LATENCY_BUCKETS)
        latency.observe(seconds)

    def count_cache_lookup(self, hit: bool) -> None:
        self._cache[hit] += 1

    def count_feature_lookups(self, hit: bool, entities: int) -> None:
        self._features[hit] += entities

    def count_classes(self, labels: list[str]) -> None:
        counts = self._by_class
        for name in labels:
            counts[name] = counts.get(name, 0) + 1

    def watch(self, rows: Rows, labels: list[str]) -> None:
        """Copy one request in DRIFT_SAMPLE's rows and classes into the drift window: a
        sample describes the distribution as well, at an eighth of the cost."""
        if self.drift is None:
            return
        self._watched += 1
        if self._watched % DRIFT_SAMPLE == 0:
            self.drift.add(rows, labels)

    def collect(self) -> Iterator[Metric]:
        """The hot-path numbers as metric families (prometheus_client's Collector protocol)."""
        ours = [self.service, self.version]
        yield self._counted(
            "mlpatterns_requests",
            "HTTP requests answered.",
            ["endpoint", "status"],
            {(endpoint, str(status)): n for (endpoint, status), n in self._requests.items()},
        )
        durations = HistogramMetricFamily(
            "mlpatterns_request_duration_seconds",
            "Time to answer an HTTP request.",
            labels=["service", "version", "endpoint", "status"],
        )
        for (endpoint, status), latency in sorted(self._latency.items()):
            durations.add_metric([*ours, endpoint, str(status)], latency.buckets(), latency.total)
        yield durations
        for name, documentation, histogram in (
            (
                "mlpatterns_inference_duration_seconds",
                "Time of one onnxruntime run.",
                self._inference,
            ),
            ("mlpatterns_batch_size", "Rows in one onnxruntime run.", self._batch),
        ):
            family = HistogramMetricFamily(name, documentation, labels=["service", "version"])
            family.add_metric(ours, histogram.buckets(), histogram.total)
            yield family
        yield self._counted(
            "mlpatterns_predictions",
            "Predicted rows by class.",
            ["class"],
            {(name,): n for name, n in self._by_class.items()},
        )
        if any(self._cache.values()):
            yield self._counted(
                "mlpatterns_prediction_cache_lookups",
                "Lookups in the prediction cache, by result (hit or miss).",
                ["result"],
                {("hit" if hit else "miss",): n for hit, n in self._cache.items()},
            )
        if any(self._features.values()):
            yield self._counted(
                "mlpatterns_data_cache_lookups",
                "Entities looked up in the data cache, by result (hit, or miss: read from "
                "the feature source).",
                ["result"],
                {("hit" if hit else "miss",): n for hit, n in self._features.items()},
            )
        if self._rewards[0]:
            rewards = SummaryMetricFamily(
                "mlpatterns_feedback_reward",
                "Rewards sent as Seldon feedback (count and sum).",
                labels=["service", "version"],
            )
            rewards.add_metric(ours, int(self._rewards[0]), self._rewards[1])
            yield rewards
        in_flight = GaugeMetricFamily(
            "mlpatterns_requests_in_flight",
            "Requests being answered now.",
            labels=["service", "version"],
        )
        in_flight.add_metric(ours, self._in_flight)
        yield in_flight
        if self.drift is not None:
            yield from self.drift.families(self.service, self.version)

    def _counted(
        self, name: str, documentation: str, labels: list[str], counts: dict[tuple[str, ...], int]
    ) -> CounterMetricFamily:
        family = CounterMetricFamily(name, documentation, labels=["service", "version", *labels])
        for values, count in sorted(counts.items()):
            family.add_metric([self.service, self.version, *values], count)
        return family

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
