"""The preprocess-prediction pattern: two real servers on loopback, on digits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from mlpatterns.training.export import predict_proba
from tests.integration.test_model_server import start_server
from tests.support.processes import die_with_parent, free_port, http_ok, wait_until
from tests.support.training import train

pytestmark = pytest.mark.integration
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))


@pytest.fixture(scope="module")
def digits_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("digits")
    train(home, {"dataset": "digits", "name": "digits"})
    return home


def start_preprocess(
    home: Path, predictor_url: str, timeout: float
) -> tuple[str, subprocess.Popen[str]]:
    port = free_port()
    process = subprocess.Popen(
        [
            MLPATTERNS,
            "serve",
            "preprocess",
            "--preprocessor",
            "models:/digits@candidate",
            "--predictor-url",
            predictor_url,
            "--port",
            str(port),
            "--timeout",
            str(timeout),
        ],
        env={**os.environ, "MLPATTERNS_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until("preprocess server", lambda: http_ok(f"{url}/v2/health/live"), 60)
    return url, process


def test_split_serving_equals_the_whole_pipeline_and_degrades_clearly(digits_home: Path) -> None:
    predictor = start_server(digits_home, "models:/digits@candidate", "--file", "predictor.onnx")
    url, preprocess = start_preprocess(digits_home, predictor.url, timeout=1.0)
    rows = load_digits().data[:64]
    try:
        wait_until("dependency readiness", lambda: http_ok(f"{url}/v2/health/ready"), 30)
        answer = httpx.post(
            f"{url}/predict", json={"data": rows.tolist()}, headers={"x-request-id": "split-1"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-request-id"] == "split-1"
        [model_dir] = list((digits_home / "cache" / "models").iterdir())
        whole = predict_proba((model_dir / "model.onnx").read_bytes(), rows)
        split = np.asarray(answer.json()["probabilities"])
        assert np.max(np.abs(split - whole)) <= 1e-5

        predictor.process.send_signal(signal.SIGSTOP)  # slow: it accepts but never answers
        try:
            slow = httpx.post(f"{url}/predict", json={"data": rows[:1].tolist()}, timeout=30)
            assert slow.status_code == 504
            assert "did not answer in time" in slow.json()["error"]
        finally:
            predictor.process.send_signal(signal.SIGCONT)

        predictor.process.kill()  # down
        predictor.process.wait(timeout=30)
        down = httpx.post(f"{url}/predict", json={"data": rows[:1].tolist()})
        assert down.status_code == 503
        assert "is unavailable" in down.json()["error"]
        assert httpx.get(f"{url}/v2/health/live").status_code == 200  # it is alive...
        wait_until("readiness to follow", lambda: not http_ok(f"{url}/v2/health/ready"), 10)
        assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": False}  # ...but not ready
    finally:
        preprocess.send_signal(signal.SIGTERM)
        assert preprocess.wait(timeout=60) == 0
        if predictor.process.poll() is None:
            predictor.process.kill()
