"""The loading-test pattern end to end: `mlpatterns loadtest` drives a real model
server with vegeta (built by hack/tools) as the synchronous example's spec.loadTest
says, and exits 0 when every threshold holds, 1 when one fails, 2 when it cannot run."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_model_server import MLPATTERNS, Server, start_server

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).parents[2] / "manifests" / "patterns" / "synchronous" / "modelservice.yaml"


@pytest.fixture(scope="module")
def server(trained: tuple[Path, str]) -> Iterator[Server]:
    running = start_server(trained[0], f"models:/iris/{trained[1]}", "--no-log-predictions")
    yield running
    running.stop()


def spec_with(tmp_path: Path, **load_test: Any) -> Path:
    """The synchronous example, its loadTest shortened to 2 s and changed by `load_test`."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["spec"]["loadTest"].update({"durationSeconds": 2, **load_test})
    path = tmp_path / "ms.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def loadtest(spec: Path, url: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLPATTERNS, "loadtest", "-f", str(spec), "--url", url, *options],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_a_met_load_test_exits_0_with_what_it_measured(server: Server, tmp_path: Path) -> None:
    spec = spec_with(tmp_path, thresholds={"p99Ms": 1000, "minSuccessRatio": 1.0})
    done = loadtest(spec, server.url, "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["result"]["requests"] == 100  # 50/s for 2 s: a bounded load
    assert report["result"]["status_codes"] == {"200": 100}
    assert [v["measure"] for v in report["verdicts"]] == ["p99", "success ratio"]
    assert all(v["passed"] for v in report["verdicts"])


def test_a_failed_threshold_exits_1_and_says_which(server: Server, tmp_path: Path) -> None:
    spec = spec_with(tmp_path, thresholds={"p50Ms": 0.001, "minSuccessRatio": 1.0})
    done = loadtest(spec, server.url)
    assert done.returncode == 1, done.stdout + done.stderr
    [p50] = [line for line in done.stdout.splitlines() if line.strip().startswith("p50")]
    assert "<= 0.001 ms" in p50
    assert "FAIL" in p50
    assert "pass" in done.stdout  # the success ratio held


def test_a_closed_load_and_errors_count_against_the_success_ratio(
    server: Server, tmp_path: Path
) -> None:
    spec = spec_with(
        tmp_path,
        rate=None,
        concurrency=2,
        body={"data": [[1.0, 2.0]]},  # the wrong width: refused (422)
        thresholds={"minSuccessRatio": 0.5},
    )
    done = loadtest(spec, server.url, "-o", "json")
    assert done.returncode == 1
    result = json.loads(done.stdout)["result"]
    assert result["success_ratio"] == 0
    assert set(result["status_codes"]) == {"422"}


def test_what_cannot_run_exits_2(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    del data["spec"]["loadTest"]
    spec = tmp_path / "no-test.yaml"
    spec.write_text(yaml.safe_dump(data))
    done = loadtest(spec, "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "has no spec.loadTest" in done.stdout
