"""Prometheus metrics of a model server: names prefixed `mlpatterns_`, base units,
labels `service` and `version` (and `endpoint`, `status`, `class` where they apply).
Each server has its own registry, so tests and several apps in one process do not mix."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

# prometheus_client's children are instances of their metric's own class
CounterChild = Counter
HistogramChild = Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    def __init__(self, service: str, version: str) -> None:
        self.registry = CollectorRegistry()
        self.service, self.version = service, version
        labels = ("service", "version")
        self.requests = Counter(
            "mlpatterns_requests_total",
            "HTTP requests answered.",
            (*labels, "endpoint", "status"),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "mlpatterns_request_duration_seconds",
            "Time to answer an HTTP request.",
            (*labels, "endpoint"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "mlpatterns_inference_duration_seconds",
            "Time of one onnxruntime run.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "mlpatterns_batch_size",
            "Rows in one onnxruntime run.",
            labels,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mlpatterns_predictions_total",
            "Predicted rows by class.",
            (*labels, "class"),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "mlpatterns_requests_in_flight",
            "Requests being answered now.",
            labels,
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "mlpatterns_prediction_log_dropped_total",
            "Prediction log records dropped because the log queue was full.",
            labels,
            registry=self.registry,
        )
        self.model = Info(
            "mlpatterns_model", "The model this server serves.", registry=self.registry
        )
        # label children resolved once: lookups by label on the hot path cost time
        self.inference = self.inference_seconds.labels(service, version)
        self.batch = self.batch_rows.labels(service, version)
        # counted in a plain int (the event loop's thread alone changes it), read when
        # scraped: a Gauge child takes a lock on every inc and dec
        self._in_flight = 0
        self.in_flight.labels(service, version).set_function(lambda: self._in_flight)
        self.dropped = self.log_dropped.labels(service, version)
        self._by_endpoint: dict[tuple[str, int], tuple[CounterChild, HistogramChild]] = {}
        self._by_class: dict[str, CounterChild] = {}  # bounded: the model's classes

    def describe_model(self, name: str, version: str, digest: str) -> None:
        self.model.info({"name": name, "version": version, "digest": digest})

    def started(self) -> None:
        self._in_flight += 1

    def finished(self) -> None:
        self._in_flight -= 1

    def observe_batch(self, rows: int, seconds: float) -> None:
        self.batch.observe(rows)
        self.inference.observe(seconds)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        children = self._by_endpoint.get((endpoint, status))
        if children is None:
            children = self._by_endpoint[(endpoint, status)] = (
                self.requests.labels(self.service, self.version, endpoint, str(status)),
                self.request_seconds.labels(self.service, self.version, endpoint),
            )
        count, duration = children
        count.inc()
        duration.observe(seconds)

    def count_classes(self, labels: list[str]) -> None:
        if len(labels) == 1:  # the common request: one row
            self._of_class(labels[0]).inc()
            return
        for name in set(labels):
            self._of_class(name).inc(labels.count(name))

    def _of_class(self, name: str) -> CounterChild:
        child = self._by_class.get(name)
        if child is None:
            child = self._by_class[name] = self.predictions.labels(self.service, self.version, name)
        return child

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
