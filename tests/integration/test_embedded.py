"""`mlpatterns up -f` as a user runs it: real model servers and a gateway as local
processes, supervised; `traffic set` under load; feedback; a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.embedded import MLPATTERNS, Up, start_up
from tests.support.load import steady_load
from tests.support.processes import free_port, http_ok, running, wait_until

pytestmark = pytest.mark.integration
ROW = {"data": [[5.9, 3.0, 4.2, 1.5]]}


SERVICE = {
    "apiVersion": "mlpatterns.io/v1alpha1",
    "kind": "ModelService",
    "metadata": {"name": "iris-embedded"},
    "spec": {
        "versions": [
            {"name": "a", "model": {"uri": "models:/iris@production"}},
            {"name": "b", "model": {"uri": "models:/iris@candidate"}},
        ],
        "traffic": {"split": [{"version": "a", "weight": 50}, {"version": "b", "weight": 50}]},
    },
}


@pytest.fixture
def up(aliased_home: Path, tmp_path: Path) -> Iterator[Up]:
    file = tmp_path / "iris.yaml"
    file.write_text(yaml.safe_dump(SERVICE))
    started = start_up(aliased_home, file)
    yield started
    if started.process.poll() is None:
        started.stop()


def test_up_serves_switches_live_restarts_and_stops_cleanly(up: Up) -> None:
    with httpx.Client(base_url=up.url, timeout=30) as client:
        seen = Counter(
            client.post("/predict", json=ROW).headers["x-mlpatterns-version"] for _ in range(400)
        )
    assert abs(seen["b"] / 400 - 0.5) < 0.1  # binomial sd 2.5%

    with steady_load(up.url, ROW) as failures:
        changed = up.mlpatterns("traffic", "set", "iris-embedded", "--split", "a=90,b=10")
        assert changed.returncode == 0, changed.stdout + changed.stderr
        switched_off = up.mlpatterns("traffic", "set", "iris-embedded", "--off", "b")
        assert switched_off.returncode == 0, switched_off.stdout + switched_off.stderr
    assert failures == []
    with httpx.Client(base_url=up.url, timeout=30) as client:
        assert {
            client.post("/predict", json=ROW).headers["x-mlpatterns-version"] for _ in range(100)
        } == {"a"}
    written = yaml.safe_load(up.file.read_text())["spec"]
    assert written["traffic"]["split"] == [
        {"version": "a", "weight": 90},
        {"version": "b", "weight": 10},
    ]
    assert written["versions"][1]["parameters"]["active"] is False
    refused = up.mlpatterns("traffic", "set", "iris-embedded", "--split", "a=50,b=60")
    assert refused.returncode == 1
    assert "add up to 110" in refused.stdout
    shown = up.mlpatterns("traffic", "show", "iris-embedded")
    assert "a=100" in shown.stdout

    answer = httpx.post(f"{up.url}/predict", json=ROW)
    feedback = httpx.post(
        f"{up.url}/feedback",
        json={"request_id": answer.headers["x-request-id"], "outcome": True},
    )
    assert feedback.status_code == 202
    assert feedback.json() == {"recorded": True, "version": "a"}
    assert httpx.post(f"{up.url}/feedback", json={"outcome": True}).status_code == 400

    processes = {p["name"]: p for p in up.state()["processes"]}  # type: ignore[union-attr]
    killed = processes["model-a"]["pid"]
    os.kill(killed, signal.SIGKILL)
    wait_until(
        "model-a restarted",
        lambda: (
            {p["name"]: p for p in up.state()["processes"]}["model-a"]["pid"] != killed  # type: ignore[union-attr]
            and http_ok(f"{up.url}/-/health")
        ),
        30,
    )
    wait_until(
        "answers again", lambda: httpx.post(f"{up.url}/predict", json=ROW).status_code == 200, 30
    )

    pids = [p["pid"] for p in up.state()["processes"]]  # type: ignore[union-attr]
    output = up.stop()
    assert up.process.returncode == 0, output
    assert "model-a exited" in output  # the supervisor said what it restarted
    assert not (up.home / "run" / "iris-embedded.json").exists()
    time.sleep(0.2)
    assert not any(running(pid) for pid in pids)
    logs = up.home / "logs" / "processes" / "iris-embedded"
    assert {p.name for p in logs.iterdir()} == {"model-a.log", "model-b.log", "gateway.log"}


def test_a_model_that_cannot_load_stops_up_with_the_reason(
    aliased_home: Path, tmp_path: Path
) -> None:
    broken = json.loads(json.dumps(SERVICE))
    broken["spec"]["versions"][1]["model"]["uri"] = "models:/iris/9.9.9"
    file = tmp_path / "broken.yaml"
    file.write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [MLPATTERNS, "up", "-f", str(file), "--port", str(free_port())],
        env={**os.environ, "MLPATTERNS_HOME": str(aliased_home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "model-b exited" in result.stdout
    assert "9.9.9" in result.stdout
