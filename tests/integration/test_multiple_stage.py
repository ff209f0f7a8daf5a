"""Multiple-stage prediction, embedded (`mlpatterns up -f` the example): the light
model answers at once; the heavy model's answer to the same request follows at
/jobs/{request id}; a stalled heavy stage never holds the light answer. Each runs
behind both data planes (the compiled one passes a follow-up's table on whole)."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlpatterns.logstreams import Folder, Stream
from tests.integration.test_embedded import ROW
from tests.support.embedded import Up, start_up
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]
EXAMPLE = Path(__file__).parents[2] / "manifests" / "patterns" / "multiple-stage"


@pytest.fixture
def up(aliased_home: Path, tmp_path: Path) -> Iterator[Up]:
    file = tmp_path / "modelservice.yaml"
    shutil.copy(EXAMPLE / "modelservice.yaml", file)
    started = start_up(aliased_home, file)
    try:
        yield started
    finally:
        started.stop()


def ask(up: Up, request_id: str) -> httpx.Response:
    return httpx.post(
        f"{up.url}/predict", json=ROW, headers={"x-request-id": request_id}, timeout=30
    )


def job(up: Up, request_id: str, state: str) -> httpx.Response:
    """The follow-up's job once it is in `state` (it is queued off the request path)."""
    found: dict[str, httpx.Response] = {}

    def reached() -> bool:
        found["it"] = httpx.get(f"{up.url}/jobs/{request_id}", timeout=10)
        return found["it"].status_code == 200 and found["it"].json()["state"] == state

    wait_until(f"job {request_id} {state}", reached, 30)
    return found["it"]


def worker_pid(up: Up) -> int:
    processes: list[dict[str, Any]] = up.state()["processes"]  # type: ignore[assignment]
    [pid] = [p["pid"] for p in processes if "heavy" in p["name"] and "worker" in p["name"]]
    return int(pid)


def test_the_light_answer_comes_at_once_and_the_heavy_one_follows(
    up: Up, aliased_home: Path, data_plane: str
) -> None:
    request_id = f"stage-1-{data_plane}"  # the queue outlives each run: an id per run
    light = ask(up, request_id)

    assert light.status_code == 200, light.text
    assert light.headers["x-mlpatterns-version"] == "light"
    assert light.headers["x-mlpatterns-follow-up"] == f"/jobs/{request_id}"
    heavy = job(up, request_id, "done")
    assert heavy.headers["x-mlpatterns-version"] == "heavy"
    assert heavy.json()["job_id"] == request_id
    assert len(heavy.json()["result"]["probabilities"][0]) == len(light.json()["probabilities"][0])

    def logged() -> set[str]:
        records = Folder(aliased_home / "logs").read(Stream.PREDICTIONS, "iris-stages")
        return {r["version"] for r in records.items if r["request_id"] == request_id}

    wait_until("both answers in the prediction log", lambda: logged() == {"light", "heavy"}, 30)


def test_a_stalled_heavy_stage_never_holds_the_light_answer(up: Up, data_plane: str) -> None:
    warm, stalled = f"warm-{data_plane}", f"while-stalled-{data_plane}"
    assert ask(up, warm).status_code == 200
    job(up, warm, "done")
    worker = worker_pid(up)
    os.kill(worker, signal.SIGSTOP)  # the heavy model's worker stops taking jobs
    try:
        light = ask(up, stalled)
        assert light.status_code == 200, light.text
        assert light.headers["x-mlpatterns-version"] == "light"
        job(up, stalled, "pending")
    finally:
        os.kill(worker, signal.SIGCONT)
    job(up, stalled, "done")


def test_a_repeated_request_id_is_answered_and_never_replaces_its_heavy_answer(
    up: Up, data_plane: str
) -> None:
    once = f"once-{data_plane}"
    assert ask(up, once).status_code == 200
    first = job(up, once, "done").json()

    again = ask(up, once)

    assert again.status_code == 200  # the light model answers; the copy is refused (409)
    assert httpx.get(f"{up.url}/jobs/{once}", timeout=10).json() == first
    metrics = httpx.get(f"{up.url}/-/metrics", timeout=10).text
    assert "# HELP mlpatterns_gateway_shadow_errors_total" in metrics
    assert 'mlpatterns_gateway_shadow_errors_total{service="iris-stages"' not in metrics
