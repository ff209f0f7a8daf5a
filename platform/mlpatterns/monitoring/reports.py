"""Shadow and online A/B reports, computed from log records. Pure functions: records
in, a report out; printing and HTML are elsewhere.

- Shadow: the primary's and the shadow's predictions joined by request id;
  agreement, a primary-vs-shadow confusion table, both latency distributions,
  and examples where they disagree.
- A/B: per version, requests (gateway decisions) and outcomes (feedback); success
  rates with Wilson 95% intervals; each challenger against the control with a
  two-sided two-proportion z-test; a plain recommendation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlpatterns.monitoring.coverage import ALL_PHASES, Coverage, coverage, in_window, utc_time
from mlpatterns.proportions import Z_95, outcome_success, two_proportion_z, wilson_interval
from mlpatterns.records import predicted_labels, quantile

__all__ = [
    "ALPHA",
    "MIN_OUTCOMES",
    "Z_95",
    "ABReport",
    "Comparison",
    "Latency",
    "Mismatch",
    "ShadowReport",
    "VersionResult",
    "ab_report",
    "recommend",
    "shadow_report",
    "two_proportion_p_value",
    "wilson_interval",
]

ALPHA = 0.05
MIN_OUTCOMES = 100  # per version, before a recommendation other than "wait"


# ---- shared --------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    count: int
    p50: float
    p90: float
    p99: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency:
        return cls(
            len(values),
            quantile(values, 0.5) or 0.0,
            quantile(values, 0.9) or 0.0,
            quantile(values, 0.99) or 0.0,
            tuple(values),
        )

    def summary(self) -> dict[str, float]:
        return {"count": self.count, "p50": self.p50, "p90": self.p90, "p99": self.p99}


def _rounded(row: Any) -> Any:
    """Inputs as the client sent them, without float32's trailing digits."""
    if isinstance(row, list):
        return [float(f"{x:.6g}") if isinstance(x, float) else x for x in row]
    return row


# ---- shadow --------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    request_id: str
    inputs: Any
    primary: str
    shadow: str


@dataclass(frozen=True)
class ShadowReport:
    service: str
    primary_versions: tuple[str, ...]
    shadow_versions: tuple[str, ...]
    pairs: int  # requests answered by a primary and seen by the shadow
    rows: int
    agreeing_rows: int
    unmatched_shadow: int  # shadow records whose primary record is missing
    confusion: dict[tuple[str, str], int]  # (primary label, shadow label) -> rows
    primary_latency: Latency
    shadow_latency: Latency
    mismatches: tuple[Mismatch, ...]
    coverage: Coverage

    @property
    def agreement(self) -> float:
        return self.agreeing_rows / self.rows if self.rows else 0.0

    @property
    def classes(self) -> list[str]:
        return sorted({label for pair in self.confusion for label in pair})

    def as_data(self) -> dict[str, Any]:
        """The report as plain data (what `report shadow -o json` prints)."""
        return {
            "coverage": self.coverage,
            "pairs": self.pairs,
            "rows": self.rows,
            "agreement": self.agreement,
            "unmatched_shadow": self.unmatched_shadow,
            "confusion": [
                {"primary": p, "shadow": s, "rows": n} for (p, s), n in self.confusion.items()
            ],
            "latency_seconds": {
                "primary": self.primary_latency.summary(),
                "shadow": self.shadow_latency.summary(),
            },
            "mismatches": self.mismatches,
        }


def shadow_report(
    service: str,
    records: Sequence[dict[str, Any]],
    max_examples: int = 10,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ShadowReport:
    """Requests a primary answered and a shadow saw, stamped within [since, until]."""
    primaries: dict[str, dict[str, Any]] = {}
    shadows: dict[str, dict[str, Any]] = {}
    for item in in_window(records, since, until):
        (shadows if item.get("shadow") else primaries)[item["request_id"]] = item
    confusion: Counter[tuple[str, str]] = Counter()
    mismatches: list[Mismatch] = []
    rows = agreeing = pairs = 0
    primary_latency, shadow_latency = [], []
    counted: list[dict[str, Any]] = []
    for request_id, copy in shadows.items():
        answered = primaries.get(request_id)
        if answered is None:
            continue
        pairs += 1
        counted += (answered, copy)
        primary_latency.append(float(answered.get("latency_seconds", 0.0)))
        shadow_latency.append(float(copy.get("latency_seconds", 0.0)))
        inputs = answered.get("input") or []
        for index, (mine, theirs) in enumerate(
            zip(predicted_labels(answered), predicted_labels(copy), strict=False)
        ):
            rows += 1
            confusion[(mine, theirs)] += 1
            if mine == theirs:
                agreeing += 1
            elif len(mismatches) < max_examples:
                example = _rounded(inputs[index]) if index < len(inputs) else None
                mismatches.append(Mismatch(request_id, example, mine, theirs))
    primary_versions = tuple(sorted({str(r.get("version", "")) for r in counted[::2]}))
    shadow_versions = tuple(sorted({str(r.get("version", "")) for r in counted[1::2]}))
    return ShadowReport(
        service=service,
        primary_versions=primary_versions,
        shadow_versions=shadow_versions,
        pairs=pairs,
        rows=rows,
        agreeing_rows=agreeing,
        unmatched_shadow=len(shadows) - pairs,
        confusion=dict(confusion),
        primary_latency=Latency.of(primary_latency),
        shadow_latency=Latency.of(shadow_latency),
        mismatches=tuple(mismatches),
        coverage=coverage(
            service,
            f"shadow {'/'.join(shadow_versions) or '-'} beside {'/'.join(primary_versions) or '-'}",
            counted,
            counted,
            [*primary_versions, *shadow_versions],
        ),
    )


# ---- online A/B ----------------------------------------------------------------


def two_proportion_p_value(s1: int, n1: int, s2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when undefined)."""
    z = two_proportion_z(s1, n1, s2, n2)
    return 1.0 if z is None else math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class VersionResult:
    name: str
    requests: int
    outcomes: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.outcomes if self.outcomes else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.outcomes)


@dataclass(frozen=True)
class Comparison:
    challenger: str
    difference: float  # challenger rate minus control rate
    p_value: float


@dataclass(frozen=True)
class ABReport:
    service: str
    control: str
    versions: tuple[VersionResult, ...]
    comparisons: tuple[Comparison, ...]
    recommendation: str
    coverage: Coverage
    test: str = "two-sided two-proportion z-test, alpha 0.05; Wilson 95% intervals"
    unmatched_feedback: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_data(self) -> dict[str, Any]:
        """The report as plain data (what `report ab -o json` prints)."""
        return {
            "coverage": self.coverage,
            "control": self.control,
            "versions": [
                {
                    "name": v.name,
                    "requests": v.requests,
                    "outcomes": v.outcomes,
                    "successes": v.successes,
                    "rate": v.rate,
                    "interval": list(v.interval),
                }
                for v in self.versions
            ],
            "comparisons": self.comparisons,
            "test": self.test,
            "recommendation": self.recommendation,
            "unmatched_feedback": self.unmatched_feedback,
        }


def ab_report(
    service: str,
    decisions: Sequence[dict[str, Any]],
    feedback: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]] = (),
    control: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    phase: str | None = None,
) -> ABReport:
    """The decisions made within [since, until] (any whose time cannot be read left
    out when a bound is given) in one traffic phase: `phase`, by default the phase of
    the latest decision, or every phase with ALL_PHASES."""
    decisions = in_window(decisions, since, until)
    if phase is None:
        latest = max(decisions, key=_decision_time, default={})
        phase = str(latest.get("phase", ""))
    if phase != ALL_PHASES:
        decisions = [d for d in decisions if str(d.get("phase", "")) == phase]
    everything = phase == ALL_PHASES and since is None and until is None
    answered = {d["request_id"]: str(d.get("version")) for d in decisions}
    requests = Counter(answered.values())
    labels = {p["request_id"]: predicted_labels(p) for p in predictions if not p.get("shadow")}
    outcomes: Counter[str] = Counter()
    successes: Counter[str] = Counter()
    unmatched = 0
    for item in {f["request_id"]: f for f in feedback}.values():  # the last word counts
        version = answered.get(item["request_id"])
        if version is None and everything:  # a decision whose record is missing
            version = item.get("version")
        verdict = outcome_success(item.get("outcome"), labels.get(item["request_id"], []))
        if not version or verdict is None:
            unmatched += 1
            continue
        outcomes[version] += 1
        successes[version] += int(verdict)
    names = sorted(set(requests) | set(outcomes), key=lambda n: (-requests[n], n))
    versions = tuple(VersionResult(n, requests[n], outcomes[n], successes[n]) for n in names)
    chosen = control if control in names else (names[0] if names else "")
    base = next((v for v in versions if v.name == chosen), None)
    comparisons = tuple(
        Comparison(
            v.name,
            v.rate - base.rate,
            two_proportion_p_value(v.successes, v.outcomes, base.successes, base.outcomes),
        )
        for v in versions
        if base is not None and v.name != chosen
    )
    return ABReport(
        service,
        chosen,
        versions,
        comparisons,
        recommend(chosen, versions, comparisons),
        coverage(
            service,
            phase,
            decisions,
            [p for p in predictions if p["request_id"] in answered],
            names,
        ),
        unmatched_feedback=unmatched,
    )


def _decision_time(decision: dict[str, Any]) -> datetime:
    return utc_time(decision.get("timestamp")) or datetime.min.replace(tzinfo=UTC)


def recommend(
    control: str, versions: Sequence[VersionResult], comparisons: Sequence[Comparison]
) -> str:
    if len(versions) < 2:
        return "not enough data yet: only one version has answered"
    short = [v.name for v in versions if v.outcomes < MIN_OUTCOMES]
    if short:
        return (
            f"not enough data yet: {', '.join(short)} "
            f"{'has' if len(short) == 1 else 'have'} fewer than {MIN_OUTCOMES} outcomes"
        )
    better = [c for c in comparisons if c.p_value < ALPHA and c.difference > 0]
    if better:
        best = max(better, key=lambda c: c.difference)
        return (
            f"roll out {best.challenger}: {best.difference:+.1%} over {control} "
            f"(p = {best.p_value:.3g})"
        )
    worse = [c.challenger for c in comparisons if c.p_value < ALPHA]
    if worse:
        return f"keep {control}: {', '.join(worse)} did significantly worse"
    return f"keep {control}: no version differs significantly (p >= {ALPHA}) so far"
