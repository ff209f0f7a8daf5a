"""Prediction monitoring from the prediction log: for each version of a service, its
live inputs and predictions against the training profile of the model it served
(found by the digest its records carry). Pure: records and profiles in, a report out.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlpatterns.drift import (
    FeatureDrift,
    class_mix_psi,
    feature_drift,
    repeated_share,
)
from mlpatterns.monitoring.coverage import Coverage, coverage, in_window
from mlpatterns.records import predicted_labels
from mlpatterns.registry.metadata import Profile

__all__ = [
    "LARGE_PSI",
    "MODERATE_PSI",
    "SMALL_P",
    "MonitorReport",
    "VersionDrift",
    "monitor_report",
    "verdict",
]

MODERATE_PSI = 0.1
LARGE_PSI = 0.25
SMALL_P = 0.01


def verdict(psi: float, p_value: float | None = None) -> str:
    """A plain reading of a PSI (and a test's p-value, where there is one)."""
    if psi >= LARGE_PSI:
        return "large shift"
    if psi >= MODERATE_PSI or (p_value is not None and p_value < SMALL_P):
        return "moderate shift"
    return "stable"


@dataclass(frozen=True)
class VersionDrift:
    version: str
    model: str
    digest: str
    requests: int
    rows: int
    features: tuple[FeatureDrift, ...]  # empty when no profile or no logged inputs
    class_psi: float | None
    repeated: float  # share of rows whose input repeats an earlier one
    note: str = ""  # why something could not be compared
    training_classes: dict[str, float] = field(default_factory=dict)  # shares in training
    live_classes: dict[str, int] = field(default_factory=dict)  # predicted, counted


@dataclass(frozen=True)
class MonitorReport:
    coverage: Coverage
    versions: tuple[VersionDrift, ...]

    def as_data(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "versions": self.versions}


def _rows(record: dict[str, Any]) -> list[list[Any]]:
    rows = record.get("input")
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, list)]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _drift(
    version: str, records: Sequence[dict[str, Any]], profile: Profile | None
) -> VersionDrift:
    first = records[0]
    rows = [row for record in records for row in _rows(record)]
    labels = Counter(label for record in records for label in predicted_labels(record))
    note = ""
    features: tuple[FeatureDrift, ...] = ()
    class_psi = None
    if profile is None:
        note = "no training profile for this model in the registry"
    else:
        if profile.class_frequencies and labels:
            class_psi = class_mix_psi(profile.class_frequencies, profile.rows, labels)
        width = len(profile.features)
        usable = [row for row in rows if len(row) == width]
        if usable:
            features = tuple(
                feature_drift(feature, [_number(row[i]) for row in usable])
                for i, feature in enumerate(profile.features)
            )
        elif rows:
            note = f"logged inputs do not have the profile's {width} features"
        else:
            note = "no inputs in its prediction records"
    return VersionDrift(
        version=version,
        model=str(first.get("model", "")),
        digest=str(first.get("digest", "")),
        requests=len(records),
        rows=len(rows),
        features=features,
        class_psi=class_psi,
        repeated=repeated_share(json.dumps(row) for row in rows),
        note=note,
        training_classes=dict(profile.class_frequencies) if profile else {},
        live_classes=dict(labels),
    )


def monitor_report(
    service: str,
    records: Sequence[dict[str, Any]],
    profile_of: Callable[[str], Profile | None],
    since: datetime | None = None,
    until: datetime | None = None,
) -> MonitorReport:
    """Each version's answered requests (shadow copies included: they are live
    traffic too) within [since, until] against the profile `profile_of(digest)`."""
    kept = in_window(records, since, until)
    by_version: dict[str, list[dict[str, Any]]] = {}
    for record in kept:
        by_version.setdefault(str(record.get("version", "")), []).append(record)
    versions = tuple(
        _drift(name, group, profile_of(str(group[0].get("digest", ""))))
        for name, group in sorted(by_version.items())
    )
    return MonitorReport(
        coverage=coverage(service, "every phase", kept, kept, [v.version for v in versions]),
        versions=versions,
    )
