"""A rollout's decisions (`rollout.decide`) and the figures they read
(`rollout.observe`): pure functions, driven step by step with a hand-set clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.api.rollout import RolloutStatus
from mlpatterns.rollout.decide import Observation, advance, analysis_due, in_force, refusal
from mlpatterns.rollout.observe import (
    DRIFT_MIN_ROWS,
    DRIFT_PSI,
    bucket_quantile,
    drifting,
    gateway_reading,
    outcomes,
    shadow_pairs,
)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def service(**rollout: Any) -> ModelService:
    spec = {
        "candidate": "b",
        "steps": [{"shadow": True, "requests": 40}, {"weight": 10}, {"weight": 50}],
        "analysis": {"intervalSeconds": 10, "minRequests": 20, "failureLimit": 1,
                     "minShadowAgreement": 0.9, "maxLatencyP99Seconds": 0.5},
        **rollout,
    }  # fmt: skip
    return parse_model_service(
        {
            "apiVersion": "mlpatterns.io/v1alpha1",
            "kind": "ModelService",
            "metadata": {"name": "iris"},
            "spec": {
                "versions": [
                    {"name": "a", "model": {"uri": "models:/iris@production"}},
                    {"name": "b", "model": {"uri": "models:/iris@candidate"}},
                ],
                "rollout": spec,
            },
        }
    )


GOOD_SHADOW = Observation(requests=25, rows=25, agreeing_rows=25, p99_seconds=0.01)
GOOD_CANARY = Observation(requests=30, errors=0, p99_seconds=0.02)


def weights(svc: ModelService, status: RolloutStatus | None) -> dict[str, int]:
    return {d.version: d.weight for d in in_force(svc, status).spec.default_route()}


def test_a_good_candidate_goes_shadow_then_canary_steps_then_is_promoted() -> None:
    svc = service()
    status, told = advance(svc, None, T0)
    assert [t.reason for t in told] == ["Started"]
    assert status.phase == "Progressing"
    assert weights(svc, status) == {"a": 100}
    assert in_force(svc, status).spec.traffic.shadow is not None
    assert not analysis_due(status, svc.spec.rollout.analysis, T0 + timedelta(seconds=9))  # type: ignore[union-attr]
    now = T0 + timedelta(seconds=10)
    status, told = advance(svc, status, now, observation=GOOD_SHADOW)
    assert status.step == 0  # 25 of the 40 shadow requests the step needs
    status, told = advance(svc, status, now + timedelta(seconds=10), observation=GOOD_SHADOW)
    assert (status.step, [t.reason for t in told]) == (1, ["Advanced"])
    assert weights(svc, status) == {"a": 90, "b": 10}
    assert in_force(svc, status).spec.traffic.shadow is None
    status, _ = advance(svc, status, now + timedelta(seconds=20), observation=GOOD_CANARY)
    assert weights(svc, status) == {"a": 50, "b": 50}
    status, told = advance(svc, status, now + timedelta(seconds=30), observation=GOOD_CANARY)
    assert status.phase == "Succeeded"
    assert [t.reason for t in told] == ["Promoted"]
    assert weights(svc, status) == {"b": 100}


def test_disagreement_in_shadow_rolls_back_after_the_failure_limit() -> None:
    svc = service()
    status, _ = advance(svc, None, T0)
    bad = Observation(requests=30, rows=30, agreeing_rows=21, p99_seconds=0.01)
    status, told = advance(svc, status, T0 + timedelta(seconds=10), observation=bad)
    assert status.phase == "Progressing"
    assert [t.reason for t in told] == ["AnalysisFailed"]
    assert "shadowAgreement 0.7 against 0.9" in told[0].message
    status, told = advance(svc, status, T0 + timedelta(seconds=20), observation=bad)
    assert status.phase == "RolledBack"
    assert weights(svc, status) == {"a": 100}
    assert in_force(svc, status).spec.traffic.shadow is None
    later, told = advance(svc, status, T0 + timedelta(seconds=30), observation=GOOD_SHADOW)
    assert later == status  # a finished rollout stays finished
    assert told == []


def test_a_pass_resets_the_failures_in_a_row() -> None:
    svc = service()
    status, _ = advance(svc, None, T0)
    slow = Observation(requests=30, rows=30, agreeing_rows=30, p99_seconds=0.9)
    status, _ = advance(svc, status, T0 + timedelta(seconds=10), observation=slow)
    status, _ = advance(svc, status, T0 + timedelta(seconds=20), observation=GOOD_SHADOW)
    assert status.failures == 0
    status, _ = advance(svc, status, T0 + timedelta(seconds=30), observation=slow)
    assert status.phase == "Progressing"


def test_errors_in_a_canary_roll_back_and_few_requests_are_inconclusive() -> None:
    svc = service(steps=[{"weight": 10}, {"weight": 50}])
    status, _ = advance(svc, None, T0)
    status, _ = advance(svc, status, T0 + timedelta(seconds=10), observation=Observation(5))
    assert status.last_analysis is not None
    assert status.last_analysis.verdict == "Inconclusive"
    failing = Observation(requests=30, errors=6, p99_seconds=0.02)
    for seconds in (20, 30):
        status, _ = advance(svc, status, T0 + timedelta(seconds=seconds), observation=failing)
    assert status.phase == "RolledBack"
    assert "errorRate 0.2 against 0.01" in status.message


def test_drift_and_a_worse_ab_outcome_fail_an_analysis() -> None:
    analysis = {"abTest": {"minOutcomes": 50}, "failureLimit": 1}
    svc = service(steps=[{"weight": 10}], analysis=analysis)
    status, _ = advance(svc, None, T0)
    drift = Observation(requests=30, drifting=("feature petal_length",))
    status, told = advance(svc, status, T0 + timedelta(seconds=30), observation=drift)
    assert "drift 1 against 0 (feature petal_length)" in told[-1].message
    worse = Observation(requests=30, candidate_outcomes=(30, 60), stable_outcomes=(54, 60))
    status, told = advance(svc, status, T0 + timedelta(seconds=60), observation=worse)
    assert status.phase == "RolledBack"
    assert "abNotWorse" in status.message
    alike = Observation(requests=30, candidate_outcomes=(50, 60), stable_outcomes=(52, 60))
    fresh, _ = advance(svc, None, T0)
    fresh, _ = advance(svc, fresh, T0 + timedelta(seconds=30), observation=alike)
    assert fresh.phase == "Succeeded"


def test_commands_pause_resume_promote_and_abort() -> None:
    svc = service()
    status, _ = advance(svc, None, T0)
    paused, told = advance(svc, status, T0, command="pause")
    assert (paused.phase, told[-1].reason) == ("Paused", "Paused")
    assert not analysis_due(paused, svc.spec.rollout.analysis, T0 + timedelta(hours=1))  # type: ignore[union-attr]
    same, _ = advance(svc, paused, T0 + timedelta(seconds=60), observation=GOOD_SHADOW)
    assert same == paused
    resumed, _ = advance(svc, paused, T0, command="resume")
    assert resumed.phase == "Progressing"
    _, told = advance(svc, resumed, T0, command="resume")
    assert told[-1].reason == "Ignored"
    promoted, _ = advance(svc, resumed, T0, command="promote")
    assert weights(svc, promoted) == {"b": 100}
    aborted, _ = advance(svc, promoted, T0, command="abort")
    assert aborted.phase == "Aborted"
    assert weights(svc, aborted) == {"a": 100}


def test_a_new_candidate_starts_a_new_rollout() -> None:
    svc = service()
    status, _ = advance(svc, None, T0, command="promote")
    assert status.phase == "Succeeded"
    other = parse_model_service(
        yaml.safe_load(
            yaml.safe_dump(svc.model_dump(mode="json", by_alias=True)).replace(
                "iris@candidate", "iris/0.2.0"
            )
        )
    )
    restarted, told = advance(other, status, T0)
    assert (restarted.phase, restarted.step, told[0].reason) == ("Progressing", 0, "Started")
    assert weights(other, status) == {"a": 100}  # routes as the new rollout's first step


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"candidate": "c"}, "rollout.candidate 'c' is not in spec.versions"),
        ({"steps": [{"weight": 50}, {"weight": 10}]}, "weights must increase"),
        ({"steps": [{"weight": 10}, {"shadow": True}]}, "shadow steps come before"),
        ({"steps": [{"shadow": True, "weight": 5}]}, "either {shadow: true} or {weight: W}"),
    ],
)
def test_a_wrong_rollout_says_what_to_change(rollout: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelServiceError, match=re.escape(message)):
        service(**rollout)


def test_the_candidate_may_not_already_take_traffic() -> None:
    data = service().model_dump(mode="json", by_alias=True, exclude_none=True)
    split = [{"version": "a", "weight": 50}, {"version": "b", "weight": 50}]
    data["spec"]["traffic"] = {"split": split}
    with pytest.raises(ModelServiceError, match=r"leave it out of traffic\.split"):
        parse_model_service(data)


GATEWAY_TEXT = """
mlpatterns_gateway_requests_total{service="iris",route="default",version="b",status="200"} 90
mlpatterns_gateway_requests_total{service="iris",route="default",version="b",status="504"} 10
mlpatterns_gateway_requests_total{service="other",route="default",version="b",status="500"} 7
mlpatterns_gateway_request_duration_seconds_bucket{service="iris",version="b",le="0.1"} 80
mlpatterns_gateway_request_duration_seconds_bucket{service="iris",version="b",le="1.0"} 100
mlpatterns_gateway_request_duration_seconds_bucket{service="iris",version="b",le="+Inf"} 100
mlpatterns_gateway_shadow_errors_total{service="iris",version="b"} 3
"""


def test_gateway_counts_their_difference_and_a_reset() -> None:
    later = gateway_reading(GATEWAY_TEXT, "iris")
    counts = later.of("b")
    assert (counts.requests, counts.errors, counts.shadow_errors) == (100, 10, 3)
    earlier = gateway_reading(GATEWAY_TEXT.replace("} 90", "} 40").replace("} 80", "} 30")
                              .replace("} 100", "} 50"), "iris")  # fmt: skip
    interval = later.since(earlier).of("b")
    assert (interval.requests, interval.errors) == (50, 0)
    assert bucket_quantile(0.5, interval.buckets) == pytest.approx(0.05)
    reset = earlier.since(later).of("b")
    assert reset.requests == 50  # a counter that went down began again at zero
    assert bucket_quantile(0.99, counts.buckets) == pytest.approx(0.1 + 0.9 * 19 / 20)
    assert bucket_quantile(0.99, ()) is None


def _record(request_id: str, version: str, label: str, *, shadow: bool = False) -> dict[str, Any]:
    return {"request_id": request_id, "version": version, "shadow": shadow,
            "output": {"labels": [label]}, "latency_seconds": 0.01,
            "timestamp": (T0 + timedelta(seconds=1)).isoformat()}  # fmt: skip


def test_shadow_pairs_and_outcomes_from_records() -> None:
    records = [_record(f"r{i}", "a", "setosa") for i in range(10)]
    records += [_record(f"r{i}", "b", "setosa" if i < 7 else "virginica", shadow=True)
                for i in range(10)]  # fmt: skip
    records.append(_record("lonely", "b", "setosa", shadow=True))
    paired = shadow_pairs(records, "b", T0)
    assert (paired.pairs, paired.rows, paired.agreeing_rows) == (10, 10, 7)
    assert shadow_pairs(records, "b", T0 + timedelta(seconds=2)).pairs == 0
    feedback = [
        {"request_id": "r1", "version": "a", "outcome": "setosa", "timestamp": T0.isoformat()},
        {"request_id": "r2", "version": "a", "outcome": False, "timestamp": T0.isoformat()},
        {"request_id": "r3", "version": "b", "outcome": 1.0, "timestamp": T0.isoformat()},
    ]
    counted = outcomes(feedback, records, ("a", "b"))
    assert (counted["a"].successes, counted["a"].outcomes) == (1, 2)
    assert (counted["b"].successes, counted["b"].outcomes) == (1, 1)


def test_drift_signals_use_the_alert_rules_thresholds() -> None:
    rules = (ROOT / "charts/mlpatterns/files/alert-rules.yaml").read_text()
    assert f"mlpatterns_feature_psi > {DRIFT_PSI}" in rules
    assert f"mlpatterns_drift_window_rows >= {DRIFT_MIN_ROWS}" in rules
    text = (
        'mlpatterns_drift_window_rows{service="iris",version="b"} 600\n'
        'mlpatterns_feature_psi{service="iris",version="b",feature="petal_length"} 0.4\n'
        'mlpatterns_feature_psi{service="iris",version="b",feature="sepal_width"} 0.1\n'
        'mlpatterns_class_mix_psi{service="iris",version="b"} 0.3\n'
    )
    assert drifting(text, "b") == ("feature petal_length", "class mix")
    assert drifting(text.replace("} 600", "} 100"), "b") == ()


def test_a_moved_alias_of_the_candidate_starts_a_new_rollout_and_routes_until_then() -> None:
    svc = service(steps=[{"weight": 10}, {"weight": 50}])
    status, _ = advance(svc, None, T0, model="iris/0.1.0 sha256:aaa")
    status, _ = advance(svc, status, T0 + timedelta(seconds=10), observation=GOOD_CANARY,
                        model="iris/0.1.0 sha256:aaa")  # fmt: skip
    assert weights(svc, status) == {"a": 50, "b": 50}
    moved, told = advance(svc, status, T0 + timedelta(seconds=11), model="iris/0.2.0 sha256:bbb")
    assert (moved.step, told[0].reason) == (0, "Started")
    assert weights(svc, status) == {"a": 50, "b": 50}  # the router keeps the recorded status
    assert weights(svc, moved) == {"a": 90, "b": 10}


def test_the_previous_version_is_kept_for_a_fast_rollback_then_retired() -> None:
    svc = service(steps=[{"weight": 50}], keepPreviousSeconds=60)
    status, _ = advance(svc, None, T0, command="promote")
    kept, told = advance(svc, status, T0 + timedelta(seconds=59))
    assert (kept.previous_retired, told) == (False, [])
    assert refusal(kept, "abort") is None
    retired, told = advance(svc, kept, T0 + timedelta(seconds=60))
    assert [t.reason for t in told] == ["Retired"]
    assert "abort no longer applies" in (refusal(retired, "abort") or "")
    replicas = {v.name: v.replicas for v in in_force(svc, retired).spec.versions}
    assert replicas == {"a": 0, "b": 1}
    assert {v.name: v.replicas for v in in_force(svc, kept).spec.versions} == {"a": 1, "b": 1}
