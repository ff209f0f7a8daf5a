"""The model server's view of drift: the rows it answered most recently and their
predicted classes, measured against its model's training profile when `/metrics`
is scraped, never on the request path (which only keeps a reference to rows it has
already parsed). Exported as gauges with bounded labels: service, version, and the
model's own feature names.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from mlpatterns.drift import class_mix_psi, feature_drift, repeated_share
from mlpatterns.registry.metadata import Profile
from mlpatterns.serving.inputs import Rows

__all__ = ["WINDOW_ROWS", "DriftWindow"]

WINDOW_ROWS = 2000  # the most recent rows the figures describe


class DriftWindow:
    """The last `size` rows and their labels, for one writing thread (the event loop,
    which also serves the scrape)."""

    def __init__(self, profile: Profile, size: int = WINDOW_ROWS) -> None:
        self.profile = profile
        self.size = size
        self._parts: deque[tuple[Rows, Sequence[str]]] = deque()
        self._rows = 0

    def add(self, rows: Rows, labels: Sequence[str]) -> None:
        self._parts.append((rows, labels))
        self._rows += len(rows)
        while self._parts and self._rows - len(self._parts[0][0]) >= self.size:
            dropped, _ = self._parts.popleft()
            self._rows -= len(dropped)

    def families(self, service: str, version: str) -> Iterator[Metric]:
        """The window's drift as metric families (empty ones while it is empty)."""
        ours = [service, version]
        rows = Rows.stack([part for part, _ in self._parts])[-self.size :] if self._parts else None
        labels = Counter(label for _, part in self._parts for label in part)
        size = GaugeMetricFamily(
            "mlpatterns_drift_window_rows",
            "Rows the drift figures describe (the most recent the server answered).",
            labels=["service", "version"],
        )
        size.add_metric(ours, 0 if rows is None else len(rows))
        yield size
        psi = GaugeMetricFamily(
            "mlpatterns_feature_psi",
            "Population stability index of a feature against the training profile.",
            labels=["service", "version", "feature"],
        )
        p_value = GaugeMetricFamily(
            "mlpatterns_feature_ks_p_value",
            "Two-sample Kolmogorov-Smirnov p-value of a feature against training.",
            labels=["service", "version", "feature"],
        )
        classes = GaugeMetricFamily(
            "mlpatterns_class_mix_psi",
            "Population stability index of the predicted classes against training's.",
            labels=["service", "version"],
        )
        repeated = GaugeMetricFamily(
            "mlpatterns_repeated_inputs_ratio",
            "Share of the window's rows equal to an earlier row of the window.",
            labels=["service", "version"],
        )
        if rows is not None and rows.shape[1] == len(self.profile.features):
            for index, feature in enumerate(self.profile.features):
                drift = feature_drift(feature, rows[:, index])
                psi.add_metric([*ours, feature.name], drift.psi)
                p_value.add_metric([*ours, feature.name], drift.p_value)
            repeated.add_metric(ours, repeated_share(row.tobytes() for row in rows))
        if labels and self.profile.class_frequencies:
            classes.add_metric(
                ours, class_mix_psi(self.profile.class_frequencies, self.profile.rows, labels)
            )
        yield from (psi, p_value, classes, repeated)
