"""The model server's view of drift: the rows it answered most recently and their
predicted classes, measured against its model's training profile when `/metrics`
is scraped, never on the request path (which only copies a request's numbers into a
ring buffer). Exported as gauges with bounded labels: service, version, and the
model's own feature names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client.core import GaugeMetricFamily, Metric

from mlpatterns.drift import class_mix_psi, feature_drift, repeated_share
from mlpatterns.registry.metadata import Profile
from mlpatterns.serving.inputs import Rows

__all__ = ["WINDOW_ROWS", "DriftWindow"]

WINDOW_ROWS = 2000  # the most recent rows the figures describe


class DriftWindow:
    """The last `size` rows and their labels in preallocated ring buffers, for one
    writing thread (the event loop, which also serves the scrape). The request path
    copies a request's numbers in and keeps no object of its own: references held
    for minutes would age through the garbage collector's generations and cost
    every request more than the copy does."""

    def __init__(self, profile: Profile, size: int = WINDOW_ROWS) -> None:
        self.profile = profile
        self.size = size
        self.width = len(profile.features)
        self._rows = np.zeros((size, self.width), dtype=np.float32)
        self._classes = np.zeros(size, dtype=np.int32)
        self._names: dict[str, int] = {}  # label -> index; labels are the model's classes
        self._next = 0
        self._filled = 0

    def add(self, rows: Rows, labels: Sequence[str]) -> None:
        if rows.width != self.width or len(rows) != len(labels):
            return
        count = len(rows)
        if count == 1:  # the common case, without building a matrix
            self._put(self._next, rows.values, labels[0])
        else:
            matrix = rows.matrix()[-self.size :]
            for offset, (row, label) in enumerate(zip(matrix, labels[-self.size :], strict=True)):
                self._put((self._next + offset) % self.size, row, label)
            count = len(matrix)
        self._next = (self._next + count) % self.size
        self._filled = min(self.size, self._filled + count)

    def _put(self, slot: int, row: list[float] | npt.NDArray[np.float32], label: str) -> None:
        self._rows[slot] = row
        index = self._names.get(label)
        if index is None:
            index = self._names[label] = len(self._names)
        self._classes[slot] = index

    def families(self, service: str, version: str) -> Iterator[Metric]:
        """The window's drift as metric families (empty ones while it is empty)."""
        ours = [service, version]
        rows = self._rows[: self._filled]
        size = GaugeMetricFamily(
            "mlpatterns_drift_window_rows",
            "Rows the drift figures describe (the most recent the server answered).",
            labels=["service", "version"],
        )
        size.add_metric(ours, self._filled)
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
        if self._filled:
            for index, feature in enumerate(self.profile.features):
                drift = feature_drift(feature, rows[:, index])
                psi.add_metric([*ours, feature.name], drift.psi)
                p_value.add_metric([*ours, feature.name], drift.p_value)
            repeated.add_metric(ours, repeated_share(row.tobytes() for row in rows))
            if self.profile.class_frequencies:
                counts = np.bincount(self._classes[: self._filled], minlength=len(self._names))
                names = sorted(self._names, key=self._names.__getitem__)
                predicted = Counter({name: int(counts[i]) for i, name in enumerate(names)})
                classes.add_metric(
                    ours,
                    class_mix_psi(self.profile.class_frequencies, self.profile.rows, predicted),
                )
        yield from (psi, p_value, classes, repeated)
