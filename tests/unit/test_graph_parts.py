"""Inference graphs' parts: what `graph` accepts, how answers combine, how a failed
step is handled by each policy, and the route table and Istio objects a graph makes;
the executor is driven with a call that answers from a table in this process (the
servers' side is tests/integration/test_inference_graphs.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from mlpatterns.api.graph import Graph
from mlpatterns.api.load import ModelServiceError
from mlpatterns.routing import istio
from mlpatterns.routing.graph import (
    GraphAnswer,
    StepAnswer,
    StepFailed,
    answer_body,
    mean,
    run_graph,
    vote,
)
from mlpatterns.routing.table import compile_table
from tests.support.services import model_service

pytestmark = pytest.mark.unit
CLASSES = ["a", "b", "c"]
VERSIONS = [{"name": n, "model": {"uri": f"models:/{n}@production"}} for n in ("x", "y", "z")]


def answered(version: str, *rows: list[float]) -> StepAnswer:
    return StepAnswer(version, "ok", 0.001, 200, classes=CLASSES, probabilities=list(rows))


def test_mean_averages_and_vote_shares_each_rows_answers() -> None:
    first = answered("x", [0.6, 0.3, 0.1], [0.1, 0.1, 0.8])
    second = answered("y", [0.2, 0.7, 0.1], [0.2, 0.2, 0.6])
    third = answered("z", [0.5, 0.4, 0.1], [0.1, 0.8, 0.1])

    averaged = mean([first, second])
    shares = vote([first, second, third])
    assert [pytest.approx(row) for row in averaged] == [[0.4, 0.5, 0.1], [0.15, 0.15, 0.7]]
    assert [pytest.approx(row) for row in shares] == [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]]
    combined = answer_body("/predict/label", replace_rows(first, [[0.1, 0.2, 0.7]]))
    assert combined == {"labels": ["c"]}


def replace_rows(step: StepAnswer, rows: list[list[float]]) -> GraphAnswer:
    return GraphAnswer(200, step.classes, rows, [step], [step.version])


def table_call(answers: dict[str, Any]) -> Any:
    """A call answering from `answers`: version -> (status, body), an exception, or a
    number of seconds to hang; records what each version was sent."""
    sent: dict[str, bytes] = {}

    async def call(version: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        sent[version] = body
        given = answers[version]
        if isinstance(given, Exception):
            raise given
        if isinstance(given, float):  # hangs, as long as its time allows
            await asyncio.sleep(min(given, timeout))
            if given > timeout:
                raise StepFailed(f"did not answer in {timeout:.3g} s", timeout=True)
        return given if isinstance(given, tuple) else (200, given)

    call.sent = sent  # type: ignore[attr-defined]
    return call


def prediction(*rows: list[float]) -> bytes:
    return orjson.dumps({"classes": CLASSES, "probabilities": list(rows)})


REQUEST = orjson.dumps({"data": [[1.0, 2.0]]})


def graph(**fields: Any) -> Graph:
    return Graph.model_validate(fields)


def test_a_sequence_feeds_each_step_the_previous_probabilities_when_asked() -> None:
    call = table_call({"x": prediction([0.7, 0.2, 0.1]), "y": prediction([0.1, 0.1, 0.8])})
    steps = [{"version": "x"}, {"version": "y", "input": "previous"}]

    answer = asyncio.run(run_graph(graph(sequence=steps), REQUEST, call))

    assert (answer.status, answer.probabilities, answer.answered_by) == (
        200,
        [[0.1, 0.1, 0.8]],
        ["y"],
    )
    assert call.sent["x"] == REQUEST
    assert orjson.loads(call.sent["y"]) == {"data": [[0.7, 0.2, 0.1]]}


@pytest.mark.parametrize(
    ("policy", "status", "answered_by"),
    [("fail", 502, []), ("skip", 200, ["x"]), ("default", 200, [])],
)
def test_a_failed_sequence_step_follows_the_policy(
    policy: str, status: int, answered_by: list[str]
) -> None:
    call = table_call({"x": prediction([0.7, 0.2, 0.1]), "y": (503, b"{}")})
    default = {"classes": CLASSES, "probabilities": [1, 0, 0]} if policy == "default" else None
    steps = [{"version": "x"}, {"version": "y", "input": "previous"}]

    answer = asyncio.run(
        run_graph(graph(sequence=steps, onError=policy, default=default), REQUEST, call)
    )

    assert (answer.status, answer.answered_by) == (status, answered_by)
    if policy == "fail":
        assert answer.error == "step y answered 503"
    if policy == "default":
        assert (answer.defaulted, answer.probabilities) == (True, [[1, 0, 0]])


def test_an_ensemble_leaves_out_a_late_or_broken_step_when_told_to_skip() -> None:
    call = table_call(
        {"x": prediction([0.6, 0.3, 0.1]), "y": 5.0, "z": StepFailed("refused", timeout=False)}
    )
    ensemble = graph(ensemble={"versions": ["x", "y", "z"]}, deadlineSeconds=0.2, onError="skip")

    answer = asyncio.run(run_graph(ensemble, REQUEST, call))

    assert (answer.status, answer.answered_by) == (200, ["x"])
    assert [s.outcome for s in answer.steps] == ["ok", "timeout", "error"]
    assert answer.probabilities == [[0.6, 0.3, 0.1]]


def test_an_ensemble_fails_with_the_failed_steps_status_and_passes_a_4xx_on() -> None:
    late = table_call({"x": prediction([1, 0, 0]), "y": 5.0})
    refusing = table_call({"x": (422, b'{"error": "bad rows"}'), "y": prediction([1, 0, 0])})
    ensemble = graph(ensemble={"versions": ["x", "y"]}, deadlineSeconds=0.1)

    timed_out = asyncio.run(run_graph(ensemble, REQUEST, late))
    refused = asyncio.run(run_graph(ensemble, REQUEST, refusing))

    assert (timed_out.status, timed_out.error) == (504, "step y did not answer in 0.1 s")
    assert (refused.status, refused.body) == (422, b'{"error": "bad rows"}')


def test_first_takes_the_first_answer_and_stops_waiting() -> None:
    call = table_call({"x": 5.0, "y": prediction([0, 1, 0])})
    first = graph(ensemble={"versions": ["x", "y"], "combine": "first"}, deadlineSeconds=3)
    answer = asyncio.run(run_graph(first, REQUEST, call))
    assert (answer.status, answer.answered_by, answer.probabilities) == (200, ["y"], [[0, 1, 0]])


def test_answers_with_other_classes_are_not_combined() -> None:
    other = orjson.dumps({"classes": ["p", "q", "r"], "probabilities": [[1, 0, 0]]})
    call = table_call({"x": prediction([1, 0, 0]), "y": other})
    answer = asyncio.run(run_graph(graph(ensemble={"versions": ["x", "y"]}), REQUEST, call))
    assert (answer.status, answer.error) == (502, "step y answered other classes")


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"graph": {"sequence": [{"version": "x"}, {"version": "w"}]}}, "not in spec.versions"),
        ({"graph": {"sequence": [{"version": "x"}, {"version": "x"}]}}, "a version twice"),
        ({"graph": {"sequence": [{"version": "x", "input": "previous"}, {"version": "y"}]}},
         "has no previous step"),
        ({"graph": {"ensemble": {"versions": ["x", "y"]}, "onError": "default"}},
         "onError default needs graph.default"),
        ({"graph": {"ensemble": {"versions": ["x", "y"]}},
          "traffic": {"split": [{"version": "x", "weight": 100}]}}, "drop traffic.split"),
        ({"graph": {"ensemble": {"versions": ["x", "y"]}}, "pattern": "asynchronous"},
         "graph needs pattern synchronous, web-single, preprocess-prediction"),
        ({"graph": {"sequence": [{"version": "x"}], "ensemble": {"versions": ["x", "y"]}}},
         "at least 2 items"),
    ],
)  # fmt: skip
def test_a_graph_that_cannot_run_is_refused_with_why(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ModelServiceError, match=says):
        model_service({"versions": VERSIONS, **fields})


def test_a_graph_needs_the_gateway_and_istio_routes_each_step_by_its_header() -> None:
    service = model_service({"versions": VERSIONS, "graph": {"ensemble": {"versions": ["x", "y"]}}})
    table = compile_table(service)

    assert table.needs_gateway
    assert table.routed == ("x", "y")  # z is in no route and no graph
    assert "graph ensemble x,y" in table.phase
    http = istio.virtual_service(table)["spec"]["http"]
    assert [route["name"] for route in http] == ["gateway-x", "gateway-y", "default"]
