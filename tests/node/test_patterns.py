"""Serving patterns on a real node, each applied with `kubectl apply -k
manifests/patterns/<pattern>` and asked from this machine through its Service's
ClusterIP: web-single and synchronous answer as the model does in process, the
preprocess-prediction pair as the whole pipeline does, the kill switch and a header
rule change who answers as clients see it. Each test removes its ModelService, so
the node carries one pattern at a time."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

from mlpatterns.training.export import predict_proba
from tests.support.walkthrough import Walkthrough, assert_split, seconds_until, versions_answering

pytestmark = pytest.mark.node
ROWS = load_iris().data


@pytest.fixture(scope="module")
def production_model(
    walkthrough: Walkthrough, models: None, tmp_path_factory: pytest.TempPathFactory
) -> bytes:
    """iris@production's whole pipeline, fetched from the chart's MinIO with the
    serving user's keys, as a pod fetches it."""
    folder = tmp_path_factory.mktemp("fetched")
    subprocess.run(
        ["mlpatterns", "fetch-model", "models:/iris@production", str(folder)],
        env={**walkthrough.env, **walkthrough.s3_env("serving"), "MLPATTERNS_HOME": str(folder)},
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return (folder / "model.onnx").read_bytes()


@pytest.fixture
def applied(walkthrough: Walkthrough, models: None) -> Iterator[list[str]]:
    """The ModelServices a test applies, removed after it."""
    names: list[str] = []
    yield names
    for name in names:
        walkthrough.kubectl("delete", "modelservice", name, "--wait=true", "--timeout=120s")


def probabilities(ip: str, rows: np.ndarray) -> np.ndarray:
    answer = httpx.post(f"http://{ip}:8080/predict", json={"data": rows.tolist()}, timeout=30)
    assert answer.status_code == 200, answer.text
    return np.asarray(answer.json()["probabilities"], dtype=np.float32)


@pytest.mark.parametrize(("pattern", "name"), [("web-single", "iris-web-single"),
                                                ("synchronous", "iris-sync")])  # fmt: skip
def test_a_pattern_answers_as_the_model_does_in_process(
    walkthrough: Walkthrough,
    production_model: bytes,
    applied: list[str],
    pattern: str,
    name: str,
) -> None:
    applied.append(name)
    ip = walkthrough.apply_pattern(pattern, name)
    served = probabilities(ip, ROWS)
    assert served.shape == (150, 3)
    assert np.max(np.abs(served - predict_proba(production_model, ROWS))) <= 1e-5
    pods = walkthrough.get("pods", "-l", f"mlpatterns.io/service={name},version=v1")["items"]
    ready = [
        p["metadata"]["name"]
        for p in pods
        if {c["type"]: c["status"] for c in p["status"]["conditions"]}.get("Ready") == "True"
    ]
    assert len(ready) == (1 if pattern == "web-single" else 2), ready


def test_the_preprocess_prediction_pair_answers_as_the_whole_pipeline(
    walkthrough: Walkthrough, production_model: bytes, applied: list[str]
) -> None:
    applied.append("iris-split")
    ip = walkthrough.apply_pattern("preprocess-prediction", "iris-split")
    components = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]
        for p in walkthrough.get("pods", "-l", "mlpatterns.io/service=iris-split")["items"]
    }
    assert {"preprocess", "predictor"} <= components
    served = probabilities(ip, ROWS)
    assert np.max(np.abs(served - predict_proba(production_model, ROWS))) <= 1e-5


def test_the_kill_switch_turns_a_version_off_and_on_for_clients(
    walkthrough: Walkthrough, applied: list[str]
) -> None:
    applied.append("iris-params")
    ip = walkthrough.apply_pattern("parameter-based", "iris-params")
    assert versions_answering(ip, 200) == Counter({"current": 200})  # candidate: active false

    def switch(active: bool) -> None:
        walkthrough.kubectl(
            "patch", "modelservice", "iris-params", "--type=json", "-p",
            f'[{{"op": "replace", "path": "/spec/versions/1/parameters/active", '
            f'"value": {str(active).lower()}}}]',
        )  # fmt: skip

    switch(True)
    assert seconds_until(lambda seen: seen["candidate"] > 0, ip, limit=90) < 90
    assert_split(versions_answering(ip, 1000), {"current": 80, "candidate": 20})
    switch(False)
    seconds_until(lambda seen: seen["candidate"] == 0, ip, limit=90)
    assert versions_answering(ip, 200) == Counter({"current": 200})


def night_in_berlin() -> bool:
    """The condition-based pattern's time rule: 22:00 to 06:00, Europe/Berlin."""
    hour = datetime.now(ZoneInfo("Europe/Berlin")).hour
    return hour >= 22 or hour < 6


def test_a_header_rule_and_the_time_window_choose_who_answers(
    walkthrough: Walkthrough, applied: list[str]
) -> None:
    applied.append("iris-conditions")
    ip = walkthrough.apply_pattern("condition-based", "iris-conditions")
    assert versions_answering(ip, 100, {"x-region": "eu"}) == Counter({"candidate": 100})
    for headers in ({"x-region": "us"}, None):
        before = night_in_berlin()
        seen = versions_answering(ip, 100, headers)
        if before == night_in_berlin():  # not across the window's edge while asking
            expected = "candidate" if before else "current"
            assert seen == Counter({expected: 100}), f"{headers}; night in Berlin: {before}"
