"""The operator's decisions: what to write, what to delete, what the status says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlpatterns.api.load import load_model_service
from mlpatterns.operator.pods import PodFailure
from mlpatterns.operator.reconcile import (
    plan_changes,
    problem_status,
    status_changed,
    status_of,
    with_transition_times,
)
from mlpatterns.render import render
from mlpatterns.routing.table import compile_table

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SERVICE = load_model_service(ROOT / "manifests/patterns/shadow-ab/modelservice.yaml")


def test_nothing_changed_means_nothing_written() -> None:
    desired = render(SERVICE)
    assert plan_changes(desired, desired).empty
    created = plan_changes(desired, [])
    assert len(created.apply) == len(desired)


def test_a_changed_object_is_written_and_a_stray_one_deleted() -> None:
    desired = render(SERVICE)
    live = [dict(item) for item in desired]
    live[0] = {**live[0], "metadata": {**live[0]["metadata"], "annotations": {}}}
    stray = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "iris-shadow-old"}}
    changes = plan_changes(desired, [*live, stray])
    assert [o["metadata"]["name"] for o in changes.apply] == [desired[0]["metadata"]["name"]]
    assert changes.delete == [("apps/v1", "Deployment", "iris-shadow-old")]


def deployment(name: str, ready: int, replicas: int) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": ready},
    }


def test_status_reads_readiness_and_the_weights_in_force() -> None:
    table = compile_table(SERVICE)
    rolling = status_of(
        SERVICE,
        table,
        [deployment("iris-shadow-current", 1, 1), deployment("iris-shadow-candidate", 0, 1)],
        router="istio",
        generation=3,
    )
    ready = {c["type"]: c for c in rolling["conditions"]}
    assert ready["Ready"]["status"] == "False"
    assert "iris-shadow-candidate" in ready["Ready"]["message"]
    assert ready["Progressing"]["status"] == "True"
    assert rolling["versions"][1] == {"name": "candidate", "replicas": 1, "readyReplicas": 0}
    assert (rolling["split"], rolling["shadow"], rolling["ready"]) == (
        "current=100",
        "candidate:100%",
        "1/2",
    )
    assert rolling["observedGeneration"] == 3
    done = status_of(
        SERVICE,
        table,
        [deployment("iris-shadow-current", 1, 1), deployment("iris-shadow-candidate", 1, 1)],
        router="istio",
        generation=3,
    )
    assert {c["type"]: c["status"] for c in done["conditions"]}["Ready"] == "True"


def test_failing_pods_make_the_service_degraded_with_their_reason() -> None:
    failures = [
        PodFailure("candidate", "ModelLoadFailed", f"pod p-{n}: container fetch-model exited")
        for n in range(5)
    ]
    status = status_of(
        SERVICE,
        compile_table(SERVICE),
        [deployment("iris-shadow-current", 1, 1), deployment("iris-shadow-candidate", 0, 1)],
        router="gateway",
        generation=1,
        failures=failures,
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    degraded = conditions["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "ModelLoadFailed")
    assert degraded["message"].startswith("candidate: pod p-0: container fetch-model exited; ")
    assert degraded["message"].endswith("(and 2 more pods)")


def test_transition_times_move_only_when_a_condition_does() -> None:
    then = datetime(2026, 1, 1, tzinfo=UTC)
    first = with_transition_times(problem_status("InvalidSpec", "bad", 1), None, then)
    again = with_transition_times(problem_status("InvalidSpec", "bad", 1), first)
    assert again["conditions"] == first["conditions"]
    assert not status_changed(again, first)
    assert status_changed(problem_status("InvalidSpec", "worse", 1), first)


def test_a_lagging_cache_is_made_up_for_by_what_was_applied() -> None:
    first = render(SERVICE)
    data = SERVICE.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["traffic"]["shadow"]["percent"] = 50
    from mlpatterns.api.load import parse_model_service
    from mlpatterns.operator.reconcile import digests

    second = render(parse_model_service(data))
    # applied `second`, but the cache still shows `first`: going back to `first` writes
    changes = plan_changes(first, first, digests(second))
    assert [o["kind"] for o in changes.apply] == ["VirtualService"]  # the mirror percent
    assert plan_changes(first, first, digests(first)).empty
    # an object applied but not yet in the cache is still pruned when unwanted
    extra = {("v1", "ConfigMap", "iris-shadow-routes"): "x"}
    assert plan_changes(first[:1], first[:1], extra).delete == [
        ("v1", "ConfigMap", "iris-shadow-routes")
    ]
