"""The figures a rollout's analysis reads, from what the processes expose: the
gateway's Prometheus text (requests, 5xx and latency per version, failed shadow
copies), the candidate server's drift gauges, and the prediction and feedback
records (shadow agreement, A/B outcomes). Pure: text and records in, numbers out;
fetching them is the runtime's.

Counters are cumulative, so an interval's figures are the difference between two
readings (`GatewayReading.since`); a counter that went down was reset by a restart,
and then counts from zero, as Prometheus' `increase` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from mlpatterns.api.rollout import RolloutStatus, Step
from mlpatterns.proportions import outcome_success
from mlpatterns.records import predicted_labels, quantile
from mlpatterns.rollout.decide import Observation, analysis_since

__all__ = [
    "DRIFT_MIN_ROWS",
    "DRIFT_PSI",
    "GatewayReading",
    "Outcomes",
    "ShadowPairs",
    "VersionCounts",
    "bucket_quantile",
    "drifting",
    "envoy_reading",
    "gateway_reading",
    "observation",
    "outcomes",
    "shadow_pairs",
]

DRIFT_PSI = 0.25  # the MlpatternsFeatureDrift and MlpatternsClassMixShift alerts' thresholds
DRIFT_MIN_ROWS = 500  # ... once the server's window holds this many rows


@dataclass(frozen=True)
class VersionCounts:
    requests: float = 0.0
    errors: float = 0.0  # answered 5xx
    shadow_errors: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count)

    def plus(self, other: VersionCounts) -> VersionCounts:
        """Two sources' counts together (two pods of a router), bucket by bucket."""
        mine, theirs = dict(self.buckets), dict(other.buckets)
        return VersionCounts(
            self.requests + other.requests,
            self.errors + other.errors,
            self.shadow_errors + other.shadow_errors,
            tuple((b, mine.get(b, 0.0) + theirs.get(b, 0.0)) for b in sorted({*mine, *theirs})),
        )

    def minus(self, earlier: VersionCounts) -> VersionCounts:
        if self.requests < earlier.requests or self.shadow_errors < earlier.shadow_errors:
            return self  # the gateway restarted: its counters began again at zero
        before = dict(earlier.buckets)
        return VersionCounts(
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            self.shadow_errors - earlier.shadow_errors,
            tuple((bound, count - before.get(bound, 0.0)) for bound, count in self.buckets),
        )


@dataclass(frozen=True)
class GatewayReading:
    versions: dict[str, VersionCounts] = field(default_factory=dict)

    def of(self, version: str) -> VersionCounts:
        return self.versions.get(version, VersionCounts())

    def since(self, earlier: GatewayReading | None) -> GatewayReading:
        if earlier is None:
            return self
        return GatewayReading(
            {name: counts.minus(earlier.of(name)) for name, counts in self.versions.items()}
        )


def gateway_reading(text: str, service: str) -> GatewayReading:
    """One service's counts by version from a gateway's /metrics text."""
    requests: dict[str, float] = {}
    errors: dict[str, float] = {}
    shadow: dict[str, float] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("service") != service:
                continue
            version = labels.get("version", "")
            if sample.name == "mlpatterns_gateway_requests_total":
                requests[version] = requests.get(version, 0.0) + sample.value
                if labels.get("status", "").startswith("5"):
                    errors[version] = errors.get(version, 0.0) + sample.value
            elif sample.name == "mlpatterns_gateway_shadow_errors_total":
                shadow[version] = shadow.get(version, 0.0) + sample.value
            elif sample.name == "mlpatterns_gateway_request_duration_seconds_bucket":
                buckets.setdefault(version, []).append((float(labels["le"]), sample.value))
    names = set(requests) | set(shadow) | set(buckets)
    return GatewayReading(
        {
            name: VersionCounts(
                requests.get(name, 0.0),
                errors.get(name, 0.0),
                shadow.get(name, 0.0),
                tuple(sorted(buckets.get(name, []))),
            )
            for name in names
        }
    )


def envoy_reading(text: str, version: str) -> GatewayReading:
    """A version's counts from one of its pods' Istio sidecar (Envoy's
    /stats/prometheus text): the requests the workload received (reporter
    "destination"). Under Istio a shadow step's copies are the only requests the
    candidate's workload gets, so its 5xx are also the failed copies."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("reporter") != "destination":
                continue
            if sample.name == "istio_requests_total":
                requests += sample.value
                if sample.labels.get("response_code", "").startswith("5"):
                    errors += sample.value
            elif sample.name == "istio_request_duration_milliseconds_bucket":
                bound = float(sample.labels["le"]) / 1000
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    counts = VersionCounts(requests, errors, errors, tuple(sorted(buckets.items())))
    return GatewayReading({version: counts})


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram's cumulative buckets, interpolated within the
    bucket it falls in, as PromQL's histogram_quantile (None without observations)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound, as PromQL
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def _stamped(record: dict[str, Any], since: datetime | None) -> bool:
    if since is None:
        return True
    try:
        return datetime.fromisoformat(str(record.get("timestamp"))) > since
    except ValueError:
        return False


@dataclass(frozen=True)
class ShadowPairs:
    pairs: int = 0
    rows: int = 0
    agreeing_rows: int = 0
    shadow_p99_seconds: float | None = None


def shadow_pairs(
    records: Iterable[dict[str, Any]], shadow: str, since: datetime | None = None
) -> ShadowPairs:
    """Requests a primary answered and the `shadow` version saw as a copy (prediction
    records stamped after `since`), and how often their predicted classes agree."""
    primaries: dict[str, dict[str, Any]] = {}
    copies: dict[str, dict[str, Any]] = {}
    for record in records:
        if not _stamped(record, since):
            continue
        if record.get("shadow"):
            if record.get("version") == shadow:
                copies[record["request_id"]] = record
        else:
            primaries[record["request_id"]] = record
    pairs = rows = agreeing = 0
    latencies = []
    for request_id, copy in copies.items():
        answered = primaries.get(request_id)
        if answered is None:
            continue
        pairs += 1
        latencies.append(float(copy.get("latency_seconds", 0.0)))
        for mine, theirs in zip(predicted_labels(answered), predicted_labels(copy), strict=False):
            rows += 1
            agreeing += mine == theirs
    return ShadowPairs(pairs, rows, agreeing, quantile(latencies, 0.99))


@dataclass(frozen=True)
class Outcomes:
    successes: int = 0
    outcomes: int = 0


def outcomes(
    feedback: Iterable[dict[str, Any]],
    predictions: Iterable[dict[str, Any]],
    versions: Sequence[str],
    since: datetime | None = None,
) -> dict[str, Outcomes]:
    """Feedback received after `since` per version, as successes among outcomes (a
    label outcome is a success when the version's answer named it)."""
    answered = {
        r["request_id"]: predicted_labels(r)
        for r in predictions
        if not r.get("shadow") and r.get("version") in versions
    }
    counts = {name: [0, 0] for name in versions}
    for item in feedback:
        version = item.get("version")
        if version not in counts or not _stamped(item, since):
            continue
        success = outcome_success(item.get("outcome"), answered.get(item["request_id"], []))
        if success is not None:
            counts[version][0] += success
            counts[version][1] += 1
    return {name: Outcomes(s, n) for name, (s, n) in counts.items()}


def drifting(text: str, version: str) -> tuple[str, ...]:
    """The drift signals over threshold in a model server's /metrics text, once its
    window holds enough rows: `feature <name>` per drifting feature, `class mix`."""
    rows = 0.0
    signals: list[str] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("version", version) != version:
                continue
            if sample.name == "mlpatterns_drift_window_rows":
                rows = sample.value
            elif sample.name == "mlpatterns_feature_psi" and sample.value > DRIFT_PSI:
                signals.append(f"feature {sample.labels.get('feature', '?')}")
            elif sample.name == "mlpatterns_class_mix_psi" and sample.value > DRIFT_PSI:
                signals.append("class mix")
    return tuple(signals) if rows >= DRIFT_MIN_ROWS else ()


def observation(
    step: Step,
    status: RolloutStatus,
    counts: VersionCounts,
    p99_seconds: float | None,
    predictions: Sequence[dict[str, Any]],
    feedback: Sequence[dict[str, Any]],
    drift: tuple[str, ...],
) -> Observation:
    """The candidate's Observation over one interval, wherever its figures were read:
    `counts` over the interval (the gateway's counters, or Prometheus'), prediction
    and feedback records from the step's start on. In a shadow step the requests are
    the copies both versions answered, in a weighted one the candidate's answers."""
    since = analysis_since(status)
    candidate, stable = status.candidate, status.stable
    if step.shadow:
        paired = shadow_pairs(predictions, candidate, since)
        return Observation(
            requests=paired.pairs,
            errors=int(counts.shadow_errors),
            p99_seconds=paired.shadow_p99_seconds,
            rows=paired.rows,
            agreeing_rows=paired.agreeing_rows,
            drifting=drift,
        )
    step_start = datetime.fromisoformat(status.step_started_at)
    results = outcomes(feedback, predictions, (candidate, stable), step_start)
    return Observation(
        requests=int(counts.requests),
        errors=int(counts.errors),
        p99_seconds=p99_seconds,
        candidate_outcomes=(results[candidate].successes, results[candidate].outcomes),
        stable_outcomes=(results[stable].successes, results[stable].outcomes),
        drifting=drift,
    )
