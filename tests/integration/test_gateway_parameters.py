"""Parameter-based serving through the gateway process: thresholds on a real binary
model, per-version timeouts and a bounded retry budget, and a shadow that answers
500s. Faults a real model server cannot be made to show on demand (500s, failing
exactly once) come from tests/support/faulty.py."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.test_gateway import start_gateway
from tests.integration.test_model_server import Server, start_server
from tests.support.faulty import Behaviour, faulty_upstream
from tests.support.training import train

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]
TUMOUR = {"data": [[14.0, 19.0, 91.0, 600.0, 0.096, 0.1, 0.08, 0.05, 0.18, 0.06] * 3]}


def most_uncertain_row(url: str) -> dict[str, Any]:
    """The breast_cancer row the model is least sure of, so a threshold can flip it."""
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer().data.tolist()
    probabilities = httpx.post(f"{url}/predict", json={"data": rows}).json()["probabilities"]
    best = min(range(len(rows)), key=lambda i: abs(probabilities[i][1] - 0.5))
    return {"data": [rows[best]]}


def modelservice(path: Path, versions: list[dict[str, Any]], traffic: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "mlpatterns.io/v1alpha1",
                "kind": "ModelService",
                "metadata": {"name": "svc"},
                "spec": {"versions": versions, "traffic": traffic},
            }
        )
    )
    return path


def version(name: str, **parameters: Any) -> dict[str, Any]:
    return {"name": name, "model": {"uri": "models:/x@y"}, "parameters": parameters}


@pytest.fixture(scope="module")
def binary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("binary-home")
    [trained] = train(home, {"dataset": "breast_cancer", "name": "tumour"})
    server = start_server(home, f"models:/tumour/{trained}", "--no-log-predictions")
    yield server
    server.stop()


def test_threshold_flips_a_binary_models_label(binary_server: Server, tmp_path: Path) -> None:
    row = most_uncertain_row(binary_server.url)
    direct = httpx.post(f"{binary_server.url}/predict", json=row).json()
    positive = direct["probabilities"][0][1]
    negative_name, positive_name = direct["classes"]
    for threshold, expected in (
        (max(0.0, positive - 0.01), positive_name),
        (min(1.0, positive + 0.01), negative_name),
    ):
        spec = modelservice(
            tmp_path / f"t{threshold}.yaml", [version("a", threshold=round(threshold, 6))], {}
        )
        url, process = start_gateway(spec, {"a": binary_server.url}, tmp_path)
        try:
            answer = httpx.post(f"{url}/predict/label", json=row)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"labels": [expected]}
            assert answer.headers["x-mlpatterns-threshold"] == f"{round(threshold, 6):g}"
            full = httpx.post(f"{url}/predict", json=row).json()
            assert full["labels"] == [expected]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_a_slow_version_times_out_with_a_504(binary_server: Server, tmp_path: Path) -> None:
    spec = modelservice(tmp_path / "ms.yaml", [version("a", timeoutSeconds=0.5)], {})
    url, process = start_gateway(spec, {"a": binary_server.url}, tmp_path)
    binary_server.process.send_signal(signal.SIGSTOP)  # a real server that stopped answering
    try:
        answer = httpx.post(f"{url}/predict", json=TUMOUR, timeout=10)
    finally:
        binary_server.process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert answer.status_code == 504
    assert answer.json() == {"error": "version a did not answer in 0.5 s"}


def test_retries_stay_within_their_budget(tmp_path: Path) -> None:
    behaviour = Behaviour(fail_first=2)
    with faulty_upstream(behaviour) as upstream:
        spec = modelservice(
            tmp_path / "ms.yaml",
            [version("enough", retries=2), version("short", retries=1)],
            {
                "rules": [
                    {
                        "match": {"headers": {"x-try": {"exact": "short"}}},
                        "route": [{"version": "short"}],
                    }
                ],
                "split": [{"version": "enough", "weight": 100}],
            },
        )
        url, process = start_gateway(spec, {"enough": upstream, "short": upstream}, tmp_path)
        try:
            recovered = httpx.post(f"{url}/predict", json={}, headers={"x-request-id": "r1"})
            exhausted = httpx.post(
                f"{url}/predict", json={}, headers={"x-request-id": "r2", "x-try": "short"}
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert (recovered.status_code, recovered.json()["tries"]) == (200, 3)
    assert exhausted.status_code == 500  # 1 + 1 retry, both failed: the answer passes on
    assert behaviour.tries["r2"] == 2


def test_a_shadow_answering_500s_never_reaches_the_client(
    binary_server: Server, tmp_path: Path
) -> None:
    with faulty_upstream(Behaviour(status=500)) as broken:
        spec = modelservice(
            tmp_path / "ms.yaml",
            [version("a"), version("b")],
            {"split": [{"version": "a", "weight": 100}], "shadow": {"version": "b"}},
        )
        url, process = start_gateway(spec, {"a": binary_server.url, "b": broken}, tmp_path)
        try:
            with httpx.Client(base_url=url, timeout=10) as client:
                answers = [client.post("/predict", json=TUMOUR) for _ in range(50)]
            metrics = httpx.get(f"{url}/metrics").text
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["x-mlpatterns-version"] for a in answers} == {"a"}
    errors = [
        line for line in metrics.splitlines() if line.startswith("mlpatterns_gateway_shadow_errors")
    ]
    assert errors
    assert float(errors[0].split()[-1]) > 0
