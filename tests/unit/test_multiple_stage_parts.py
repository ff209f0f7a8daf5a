"""Multiple-stage prediction's parts: what `followUp` accepts, the route table it
compiles to (a copy of the simple API to the heavy version, its jobs routed to it),
the processes it runs, and the Istio objects that do the same."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.routing import istio
from mlpatterns.routing.decide import decide
from mlpatterns.routing.table import compile_table
from mlpatterns.topology import components
from tests.support.services import document

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 7, tzinfo=UTC)


def staged(**spec: Any) -> dict[str, Any]:
    versions = [
        {"name": "light", "model": {"uri": "models:/iris@production"}},
        {"name": "heavy", "model": {"uri": "models:/iris@candidate"}},
    ]
    return document(
        {
            "versions": versions,
            "traffic": {"split": [{"version": "light", "weight": 100}]},
            "followUp": {"version": "heavy"},
            **spec,
        }
    )


def service(**spec: Any) -> ModelService:
    return parse_model_service(staged(**spec))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"followUp": {"version": "huge"}}, "followUp names version 'huge'"),
        ({"pattern": "asynchronous"}, "followUp needs pattern synchronous or web-single"),
        (
            {"traffic": {"split": [{"version": "light", "weight": 50},
                                   {"version": "heavy", "weight": 50}]}},
            "followUp version 'heavy' also takes traffic",
        ),
        (
            {"traffic": {"split": [{"version": "light", "weight": 100}],
                         "shadow": {"version": "heavy"}}},
            "traffic.shadow besides it is not supported",
        ),
        ({"router": "seldon"}, "followUp (Seldon serves no asynchronous API)"),
    ],
)  # fmt: skip
def test_a_follow_up_that_cannot_work_is_refused_with_why(
    change: dict[str, Any], says: str
) -> None:
    with pytest.raises(ModelServiceError, match=says.replace("(", r"\(").replace(")", r"\)")):
        service(**change)


def test_the_table_copies_the_simple_api_to_the_heavy_version_and_routes_its_jobs_there() -> None:
    table = compile_table(service())

    assert (table.follow_up, table.mirror, table.mirror_path) == (
        "heavy",
        ("heavy", 100.0),
        "/predict",
    )
    predicted = decide(table, {}, "/predict", NOW, 0.5, 0.99)
    inferred = decide(table, {}, "/v2/models/iris/infer", NOW, 0.5, 0.0)
    fetched = decide(table, {}, "/jobs/abc", NOW, 0.5, 0.0)
    assert (predicted.version, predicted.shadow) == ("light", "heavy")
    assert (inferred.version, inferred.shadow) == ("light", None)  # the async API takes /predict
    assert (fetched.route, fetched.version, fetched.shadow) == ("follow-up", "heavy", None)
    assert table.describe()["follow_up"] == "heavy"
    assert table.describe()["shadow"] is None
    assert "follow-up heavy" in table.phase


def test_a_switched_off_heavy_version_gets_neither_copies_nor_jobs() -> None:
    data = staged()
    data["spec"]["versions"][1]["parameters"] = {"active": False}
    table = compile_table(parse_model_service(data))

    assert (table.follow_up, table.mirror, table.mirror_path) == (None, None, None)
    assert [route.name for route in table.routes] == ["default"]


def test_the_heavy_version_runs_as_an_asynchronous_api_naming_jobs_by_request() -> None:
    staged_service = service()
    light, heavy = staged_service.spec.versions

    [model] = components(staged_service, light)
    api, worker = components(staged_service, heavy)

    assert model.role == "model-server"
    assert (api.role, api.routed, api.queue) == ("async-api", True, True)
    assert api.args[-2:] == ("--job-ids", "request")
    assert (worker.role, worker.queue) == ("worker", True)


def test_istio_mirrors_only_the_simple_api_and_routes_jobs_to_the_heavy_subset() -> None:
    http = istio.virtual_service(compile_table(service()))["spec"]["http"]

    assert [route["name"] for route in http] == ["follow-up", "default-mirrored", "default"]
    jobs, mirrored, default = http
    assert jobs["match"] == [{"uri": {"prefix": "/jobs/"}}]
    assert jobs["route"][0]["destination"]["subset"] == "heavy"
    assert mirrored["match"] == [{"uri": {"exact": "/predict"}}]
    assert mirrored["mirror"] == {"host": "iris", "subset": "heavy"}
    assert mirrored["route"][0]["destination"]["subset"] == "light"
    assert "mirror" not in default
    assert "mirror" not in jobs


def test_with_rules_each_route_gets_its_mirrored_twin_for_the_simple_api() -> None:
    rules = [{"match": {"headers": {"x-region": {"exact": "eu"}}}, "route": [{"version": "light"}]}]
    table = compile_table(
        service(traffic={"rules": rules, "split": [{"version": "light", "weight": 100}]})
    )
    http = istio.virtual_service(table)["spec"]["http"]

    names = [route["name"] for route in http]
    assert names == ["follow-up", "rule-0-mirrored", "rule-0", "default-mirrored", "default"]
    assert http[1]["match"] == [
        {"headers": {"x-region": {"exact": "eu"}}, "uri": {"exact": "/predict"}}
    ]
