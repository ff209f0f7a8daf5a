"""Validation before training: columns, types, ranges, missing values and labels.

Invalid rows are rejected with the reasons, row by row; training stops with the
report when more than the allowed share of rows is invalid.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mlpatterns.registry.metadata import DatasetSchema, FeatureSchema

__all__ = ["InvalidDataError", "RejectedRow", "ValidTable", "ValidationReport", "validate"]


@dataclass(frozen=True)
class RejectedRow:
    line: int  # 1-based line in the CSV file (the header is line 1)
    reasons: tuple[str, ...]


@dataclass
class ValidationReport:
    rows: int
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def invalid_fraction(self) -> float:
        return len(self.rejected) / self.rows if self.rows else 0.0

    def summary(self, limit: int = 10) -> str:
        lines = [f"{len(self.rejected)} of {self.rows} rows rejected"]
        lines += [f"  line {r.line}: {'; '.join(r.reasons)}" for r in self.rejected[:limit]]
        if len(self.rejected) > limit:
            lines.append(f"  ... and {len(self.rejected) - limit} more")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "rejected": [{"line": r.line, "reasons": list(r.reasons)} for r in self.rejected],
        }


@dataclass(frozen=True)
class ValidTable:
    features: npt.NDArray[np.float64]
    labels: npt.NDArray[np.str_]
    report: ValidationReport


class InvalidDataError(ValueError):
    """Too much of the data is invalid to train on; carries the report."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


def _check_value(text: str, feature: FeatureSchema) -> tuple[float, str | None]:
    if text.strip() == "":
        return math.nan, None if feature.nullable else f"{feature.name} is missing"
    try:
        value = float(text)
    except ValueError:
        return math.nan, f"{feature.name}={text!r} is not a number"
    if not math.isfinite(value):
        return math.nan, f"{feature.name}={text} is not finite"
    if feature.dtype == "int" and not value.is_integer():
        return value, f"{feature.name}={text} is not an integer"
    if feature.minimum is not None and value < feature.minimum:
        return value, f"{feature.name}={text} is below the minimum {feature.minimum:g}"
    if feature.maximum is not None and value > feature.maximum:
        return value, f"{feature.name}={text} is above the maximum {feature.maximum:g}"
    return value, None


def validate(
    csv_bytes: bytes, schema: DatasetSchema, *, max_invalid_fraction: float = 0.05
) -> ValidTable:
    """Parse and check every row; raise InvalidDataError when too many are invalid."""
    reader = csv.reader(io.StringIO(csv_bytes.decode("utf-8")))
    header = next(reader, None)
    expected = [*schema.feature_names, schema.label]
    if header is None:
        raise InvalidDataError("the dataset is empty", ValidationReport(0))
    missing = [c for c in expected if c not in header]
    if missing:
        raise InvalidDataError(
            f"the dataset lacks the columns {missing}; its header is {header}",
            ValidationReport(0),
        )
    positions = [header.index(c) for c in expected]
    classes = set(schema.classes)
    features: list[list[float]] = []
    labels: list[str] = []
    report = ValidationReport(rows=0)
    for line, row in enumerate(reader, start=2):
        report.rows += 1
        if len(row) != len(header):
            reason = f"has {len(row)} fields, the header has {len(header)}"
            report.rejected.append(RejectedRow(line, (reason,)))
            continue
        values, reasons = [], []
        for feature, position in zip(schema.features, positions, strict=False):
            value, problem = _check_value(row[position], feature)
            values.append(value)
            if problem:
                reasons.append(problem)
        label = row[positions[-1]].strip()
        if not label:
            reasons.append(f"{schema.label} is missing")
        elif classes and label not in classes:
            reasons.append(f"{schema.label}={label!r} is not one of {sorted(classes)}")
        if reasons:
            report.rejected.append(RejectedRow(line, tuple(reasons)))
            continue
        features.append(values)
        labels.append(label)
    if report.rows == 0:
        raise InvalidDataError("the dataset has a header but no rows", report)
    if report.invalid_fraction > max_invalid_fraction:
        raise InvalidDataError(
            f"too many invalid rows to train on ({report.invalid_fraction:.1%} > "
            f"{max_invalid_fraction:.1%} allowed):\n{report.summary()}",
            report,
        )
    return ValidTable(
        np.asarray(features, dtype=np.float64).reshape(len(features), len(schema.features)),
        np.asarray(labels, dtype=np.str_),
        report,
    )
