"""Traffic changes as validated edits of a ModelService (what `traffic set` and the
kubectl plugin apply)."""

from __future__ import annotations

from typing import Any

import pytest

from mlpatterns.api.edits import apply_changes, parse_shadow, parse_split, traffic_patch
from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.api.modelservice import ModelService

pytestmark = pytest.mark.unit


def service(**traffic: Any) -> ModelService:
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
                "traffic": traffic,
            },
        }
    )


def test_split_shadow_and_switches_apply_in_order() -> None:
    changed = apply_changes(service(), split="a=90,b=10", shadow="b:50", off=["b"])
    traffic = changed.spec.traffic
    assert [(d.version, d.weight) for d in traffic.split] == [("a", 90), ("b", 10)]
    assert traffic.shadow is not None
    assert (traffic.shadow.version, traffic.shadow.percent) == ("b", 50.0)
    assert not changed.spec.versions[1].parameters.active
    back_on = apply_changes(changed, on=["b"], no_shadow=True, sticky="x-user-id")
    assert back_on.spec.versions[1].parameters.active
    assert back_on.spec.traffic.shadow is None
    assert back_on.spec.traffic.sticky is not None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"split": "a=50,b=60"}, "add up to 110"),
        ({"split": "a=90,c=10"}, "'c', which is not in spec.versions"),
        ({"split": "a:90"}, "version=weight"),
        ({"off": ["zz"]}, "no version 'zz'"),
        ({"shadow": "b:x"}, "version:percent"),
        ({"shadow": "b", "no_shadow": True}, "not both"),
        ({"sticky": "X-User"}, "must be lowercase"),
    ],
)
def test_invalid_changes_say_what_to_fix(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelServiceError) as error:
        apply_changes(service(), **changes)
    assert message in str(error.value)


def test_a_shadow_onto_the_only_primary_is_refused() -> None:
    with pytest.raises(ModelServiceError, match="also the only version answering"):
        apply_changes(service(split=[{"version": "a", "weight": 100}]), split="b=100", shadow="b")


def test_parsers_and_patch() -> None:
    assert parse_split(" a=1 , b=99 ") == [
        {"version": "a", "weight": 1},
        {"version": "b", "weight": 99},
    ]
    assert parse_shadow("b") == {"version": "b", "percent": 100.0}
    patch = traffic_patch(apply_changes(service(), split="a=50,b=50"))
    assert patch["spec"]["traffic"]["split"][1] == {"version": "b", "weight": 50}
    assert [v["name"] for v in patch["spec"]["versions"]] == ["a", "b"]
