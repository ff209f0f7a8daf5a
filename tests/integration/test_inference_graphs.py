"""Inference graphs, embedded (`mlpatterns up -f` the examples): a sequence answers as
its models do one after the other, an ensemble as their combination; a stalled step
is skipped, fails the graph or gets the default answer as declared, always within
the deadline; each step's outcome shows in the answer, the metrics and the logs. Each
runs behind both data planes (the compiled one passes a graph's table on whole)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_iris

from mlpatterns.logstreams import Folder, Stream
from mlpatterns.registry.registry import Registry
from mlpatterns.settings import load_settings
from mlpatterns.training.export import predict_proba
from tests.support.embedded import Up, start_up
from tests.support.metrics import sample, scrape
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]
PATTERNS = Path(__file__).parents[2] / "manifests" / "patterns"
ROWS = load_iris().data[[0, 60, 120]]


def model(home: Path, reference: str) -> bytes:
    registry = Registry.from_settings(load_settings(home=home))
    return registry.read_file(registry.resolve(reference))


@pytest.fixture
def running(aliased_home: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Up]:
    """`up -f` the example `request.param` = (pattern, changes to its graph[, changes
    to its spec])."""
    pattern, changes, *spec_changes = request.param
    document = yaml.safe_load((PATTERNS / pattern / "modelservice.yaml").read_text())
    document["spec"]["graph"].update(changes)
    document["spec"].update(*spec_changes)
    file = tmp_path / "modelservice.yaml"
    file.write_text(yaml.safe_dump(document))
    up = start_up(aliased_home, file)
    try:
        yield up
    finally:
        up.stop()


def ask(up: Up, path: str = "/predict", **headers: str) -> httpx.Response:
    return httpx.post(f"{up.url}{path}", json={"data": ROWS.tolist()}, headers=headers, timeout=30)


def ask_while_stalled(up: Up, version: str) -> tuple[httpx.Response, float]:
    """The answer, and the seconds it took, while `version`'s server is stopped."""
    processes: list[dict[str, Any]] = up.state()["processes"]  # type: ignore[assignment]
    [pid] = [p["pid"] for p in processes if p["name"] == f"model-{version}"]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        return ask(up), time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("running", [("microservice-vertical", {})], indirect=True)
def test_a_sequence_answers_as_its_models_one_after_the_other(
    running: Up, aliased_home: Path
) -> None:
    first = predict_proba(model(aliased_home, "models:/iris@production"), ROWS)
    expected = predict_proba(model(aliased_home, "models:/iris-stacked@production"), first)

    answer = ask(running, **{"x-request-id": "graph-1"})
    labels = ask(running, "/predict/label")

    assert answer.status_code == 200, answer.text
    assert np.max(np.abs(np.array(answer.json()["probabilities"]) - expected)) <= 1e-5
    assert answer.headers["x-mlpatterns-version"] == "second"
    steps = answer.headers["x-mlpatterns-graph"]
    assert steps.startswith("first=ok:")
    assert ",second=ok:" in steps
    assert labels.json()["labels"] == ["setosa", "versicolor", "virginica"]

    def logged() -> set[str]:
        records = Folder(aliased_home / "logs").read(Stream.PREDICTIONS, "iris-sequence")
        return {r["version"] for r in records.items if r["request_id"] == "graph-1"}

    wait_until("both steps in the prediction log", lambda: logged() == {"first", "second"}, 30)


VOTE = {"ensemble": {"versions": ["logistic", "forest"], "combine": "vote"}}


SPLIT = {"pattern": "preprocess-prediction"}  # each step a preprocess server and predictor


@pytest.mark.parametrize(
    "running",
    [
        ("microservice-horizontal", {}),
        ("microservice-horizontal", VOTE),
        ("microservice-horizontal", {}, SPLIT),
    ],
    indirect=True,
    ids=["mean", "vote", "preprocess-prediction steps"],
)
def test_an_ensemble_answers_as_its_models_combined(running: Up, aliased_home: Path) -> None:
    logistic = predict_proba(model(aliased_home, "models:/iris@production"), ROWS)
    forest = predict_proba(model(aliased_home, "models:/iris@candidate"), ROWS)
    document = yaml.safe_load(running.file.read_text())
    combine = document["spec"]["graph"]["ensemble"]["combine"]

    answer = ask(running)

    assert answer.status_code == 200, answer.text
    got = np.array(answer.json()["probabilities"])
    if combine == "mean":
        assert np.max(np.abs(got - (logistic + forest) / 2)) <= 1e-5
    else:
        votes = np.zeros_like(logistic)
        for probabilities in (logistic, forest):
            votes[np.arange(len(ROWS)), probabilities.argmax(axis=1)] += 0.5
        assert np.array_equal(got, votes)
    assert answer.headers["x-mlpatterns-version"] == "logistic,forest"


@pytest.mark.parametrize("running", [("microservice-horizontal", {})], indirect=True)
def test_a_stalled_step_is_skipped_within_the_deadline(running: Up, aliased_home: Path) -> None:
    logistic = predict_proba(model(aliased_home, "models:/iris@production"), ROWS)
    answer, took = ask_while_stalled(running, "forest")

    assert answer.status_code == 200, answer.text
    assert np.max(np.abs(np.array(answer.json()["probabilities"]) - logistic)) <= 1e-5
    assert answer.headers["x-mlpatterns-version"] == "logistic"
    assert "forest=timeout" in answer.headers["x-mlpatterns-graph"]
    assert took < 5  # the 0.5 s deadline, not the upstream's 30 s timeout
    families = scrape(running.url)  # the gateway's own metrics
    timed_out = sample(
        families, "mlpatterns_gateway_graph_step_seconds_count", version="forest", outcome="timeout"
    )
    assert timed_out >= 1


@pytest.mark.parametrize(
    "running", [("microservice-horizontal", {"onError": "fail"})], indirect=True
)
def test_a_stalled_step_fails_the_graph_when_it_says_fail(running: Up) -> None:
    answer, _ = ask_while_stalled(running, "forest")
    assert answer.status_code == 504
    assert "step forest did not answer" in answer.json()["error"]


DEFAULT = {"onError": "default",
           "default": {"classes": ["setosa", "versicolor", "virginica"],
                       "probabilities": [0.34, 0.33, 0.33]}}  # fmt: skip


@pytest.mark.parametrize("running", [("microservice-vertical", DEFAULT)], indirect=True)
def test_a_stalled_step_gets_the_default_answer_when_it_says_default(running: Up) -> None:
    answer, _ = ask_while_stalled(running, "second")
    assert answer.status_code == 200
    assert answer.json()["probabilities"] == [[0.34, 0.33, 0.33]] * len(ROWS)
    assert answer.headers["x-mlpatterns-default"] == "true"


@pytest.mark.parametrize("running", [("microservice-vertical", {})], indirect=True)
def test_what_a_graph_does_not_take_is_refused_with_why(running: Up) -> None:
    bad = httpx.post(f"{running.url}/predict", json={"data": [[1, 2]]}, timeout=10)
    other = httpx.post(f"{running.url}/v2/models/iris/infer", json={}, timeout=10)
    got = httpx.get(f"{running.url}/predict", timeout=10)

    assert bad.status_code == 422  # the first step's own answer: the client's mistake
    assert "4 numbers" in bad.json()["error"]
    assert other.status_code == 404
    assert "iris-sequence is an inference graph" in other.json()["error"]
    assert got.status_code == 405
