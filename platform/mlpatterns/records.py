"""What the reports, `mlpatterns monitor` and a rollout's analysis read from the
records the log streams hold: the labels a prediction's answer named, and the
quantiles of a list of latencies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["predicted_labels", "quantile"]


def predicted_labels(record: dict[str, Any]) -> list[str]:
    """The labels a prediction record's answer named, one per row (`output.labels`, or a
    single `output.label`); none for a record without them."""
    output = record.get("output")
    if not isinstance(output, dict):
        return []
    labels = output.get("labels", [output.get("label")] if "label" in output else [])
    if not isinstance(labels, list):
        return []
    return [str(label) for label in labels if label is not None]


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between the closest ranks (numpy's
    default method); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
