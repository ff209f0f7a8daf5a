"""Training-to-serving on one machine: `mlpatterns up` drives `spec.rollout` with
real model servers, a real gateway and real traffic. A good candidate goes shadow,
10, 50, 100 and is promoted (the registry alias moved); one that disagrees with the
stable model on a third of the rows is rolled back during shadow; one whose server
stops answering during the canary is rolled back, its clients' errors bounded by
the canary's weight; pause, resume, a restart of `up` and abort act on the
recorded state."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sklearn.datasets import load_iris

from mlpatterns.registry.registry import Registry
from mlpatterns.settings import load_settings
from tests.support.embedded import Up, start_up
from tests.support.load import recorded_load
from tests.support.processes import running, wait_until
from tests.support.training import FOREST, aliased_iris

pytestmark = pytest.mark.integration
ROWS = [list(map(float, row)) for row in load_iris().data]
ANALYSIS = {
    "intervalSeconds": 1.5,
    "minRequests": 8,
    "failureLimit": 1,
    "maxErrorRate": 0.05,
    "maxLatencyP99Seconds": 1.0,
    "minShadowAgreement": 0.85,
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris@production (logistic regression), iris@candidate (random forest, agrees on
    about 95% of rows) and iris@weak (a one-split tree: two classes of three)."""
    folder = tmp_path_factory.mktemp("rollout-home")
    weak = {**FOREST, "parameters": json.dumps({"n_estimators": 1, "max_depth": 1})}
    aliased_iris(folder, weak=weak)
    return folder


def write_service(
    folder: Path, name: str, candidate: str, steps: list[dict[str, Any]], **extra: Any
) -> Path:
    rollout = {"candidate": "b", "steps": steps, "analysis": ANALYSIS, **extra}
    version_b: dict[str, Any] = {"name": "b", "model": {"uri": f"models:/iris@{candidate}"}}
    if candidate == "candidate":
        version_b["parameters"] = {"timeoutSeconds": 0.5}
    service = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name},
        "spec": {
            "versions": [{"name": "a", "model": {"uri": "models:/iris@production"}}, version_b],
            "rollout": rollout,
        },
    }
    file = folder / f"{name}.yaml"
    file.write_text(yaml.safe_dump(service))
    return file


def status(up: Up, name: str) -> dict[str, Any]:
    path = up.home / "run" / f"{name}.rollout.json"
    return json.loads(path.read_text()) if path.exists() else {}  # type: ignore[no-any-return]


def decisions(up: Up, name: str) -> list[dict[str, Any]]:
    path = up.home / "logs" / "rollouts" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(up: Up, name: str, phase: str, step: int | None = None, limit: float = 90) -> None:
    def reached() -> bool:
        now = status(up, name)
        return now.get("phase") == phase and (step is None or now.get("step") == step)

    try:
        wait_until(f"rollout {name} {phase} step {step}", reached, limit)
    except Exception:
        raise AssertionError(json.dumps(status(up, name), indent=2)) from None


def routes(up: Up) -> dict[str, Any]:
    return httpx.get(f"{up.url}/-/routes", timeout=10).json()  # type: ignore[no-any-return]


@pytest.fixture
def started(home: Path, tmp_path: Path) -> Iterator[list[Up]]:
    running: list[Up] = []
    yield running
    for up in running:
        if up.process.poll() is None:
            up.stop()


def test_a_good_candidate_is_promoted_step_by_step(
    home: Path, tmp_path: Path, started: list[Up]
) -> None:
    steps = [
        {"shadow": True, "requests": 40},
        {"weight": 10, "requests": 15},
        {"weight": 50, "requests": 30},
        {"weight": 100, "requests": 20},
    ]
    file = write_service(
        tmp_path, "good", "candidate", steps, promoteAlias="production", keepPreviousSeconds=2
    )
    registry = Registry.from_settings(load_settings(home=home))
    before = registry.aliases("iris")["production"]
    try:
        up = start_up(home, file)
        started.append(up)
        with recorded_load(up.url, ROWS) as answers:
            wait_for(up, "good", "Succeeded")
        wait_until("retired", lambda: status(up, "good").get("previousRetired") is True, 15)
        reasons = [d["reason"] for d in decisions(up, "good")]
        assert reasons == [
            "Started", "Advanced", "Advanced", "Advanced", "Promoted", "AliasMoved", "Retired"
        ]  # fmt: skip
        stable_pid = next(p["pid"] for p in up.state()["processes"] if p["name"] == "model-a")  # type: ignore[union-attr, index]
        wait_until("the previous version stopped", lambda: not running(stable_pid), 30)
        assert [a.status for a in answers if a.status != 200] == []
        assert {a.version for a in answers} == {"a", "b"}
        assert routes(up)["routes"][-1]["destinations"] == {"b": 100}
        aliases = registry.aliases("iris")
        assert aliases["production"] == aliases["candidate"] != before
        shown = up.mlpatterns("rollout", "status", "good")
        assert shown.returncode == 0, shown.stderr
        assert "Succeeded, step 4 of 4 (weight 100)" in shown.stdout
        assert "weights in force: b=100" in shown.stdout
    finally:
        registry.move_alias("iris", "production", before)  # the other tests' stable version


def test_a_candidate_that_disagrees_is_rolled_back_in_shadow(
    home: Path, tmp_path: Path, started: list[Up]
) -> None:
    steps = [{"shadow": True, "requests": 400}, {"weight": 50}]
    file = write_service(tmp_path, "weak", "weak", steps)
    up = start_up(home, file)
    started.append(up)
    with recorded_load(up.url, ROWS) as answers:
        wait_for(up, "weak", "RolledBack", step=0)
    last = status(up, "weak")["lastAnalysis"]
    agreement = next(c for c in last["checks"] if c["name"] == "shadowAgreement")
    assert agreement["passed"] is False
    assert agreement["value"] < 0.85
    assert {a.version for a in answers} == {"a"}  # a shadow never answers a client
    assert all(a.status == 200 for a in answers)
    assert routes(up)["shadow"] is None


def test_a_failing_canary_is_rolled_back_with_errors_bounded_by_its_weight(
    home: Path, tmp_path: Path, started: list[Up]
) -> None:
    steps = [{"shadow": True, "requests": 20}, {"weight": 10, "requests": 100_000}]
    file = write_service(tmp_path, "failing", "candidate", steps)
    up = start_up(home, file)
    started.append(up)
    server = {p["name"]: p["pid"] for p in up.state()["processes"]}["model-b"]  # type: ignore[union-attr]
    with recorded_load(up.url, ROWS, clients=6) as answers:
        wait_for(up, "failing", "Progressing", step=1)
        os.kill(server, signal.SIGSTOP)  # the candidate stops answering: the gateway's 504s
        try:
            stopped = time.monotonic()
            wait_for(up, "failing", "RolledBack", step=1)
            rolled_back = time.monotonic()
            time.sleep(2)
        finally:
            os.kill(server, signal.SIGCONT)
    during = [a for a in answers if stopped <= a.at <= rolled_back]
    errors = [a for a in during if a.status != 200]
    assert errors, "the stopped candidate caused no error"
    assert len(errors) <= 0.2 * len(during) + 6  # its weight is 10%; 6 clients in flight
    after = [a for a in answers if a.at > rolled_back + 1]
    assert after
    assert all(a.status == 200 and a.version == "a" for a in after)
    message = status(up, "failing")["message"]
    assert "errorRate" in message or "latencyP99Seconds" in message


def test_pause_resume_restart_and_abort_act_on_the_recorded_state(
    home: Path, tmp_path: Path, started: list[Up]
) -> None:
    steps = [{"weight": 10, "requests": 10}, {"weight": 50, "requests": 100_000}]
    file = write_service(tmp_path, "steered", "candidate", steps)
    up = start_up(home, file)
    started.append(up)
    paused = up.mlpatterns("rollout", "pause", "steered")
    assert paused.returncode == 0, paused.stdout + paused.stderr
    assert "Paused, step 1 of 2" in paused.stdout
    with recorded_load(up.url, ROWS) as answers:
        time.sleep(5)  # three intervals: a paused rollout stays where it is
        assert status(up, "steered")["phase"] == "Paused"
        resumed = up.mlpatterns("rollout", "resume", "steered")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        wait_for(up, "steered", "Progressing", step=1)
    assert all(a.status == 200 for a in answers)
    up.stop()
    again = start_up(home, file)
    started.append(again)
    assert status(again, "steered")["step"] == 1
    assert routes(again)["routes"][-1]["destinations"] == {"a": 50, "b": 50}
    aborted = again.mlpatterns("rollout", "abort", "steered")
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    assert "Aborted" in aborted.stdout
    wait_until(
        "routes back to a",
        lambda: routes(again)["routes"][-1]["destinations"] == {"a": 100},
        10,
    )
    reasons = [d["reason"] for d in decisions(again, "steered")]
    assert reasons == ["Started", "Paused", "Resumed", "Advanced", "Aborted"]
    refused = again.mlpatterns("rollout", "resume", "steered")
    assert refused.returncode == 1
    assert "resume does not apply to a rollout that is Aborted" in refused.stdout


def test_a_version_follows_its_alias_and_restarts_only_when_it_moves(
    home: Path, tmp_path: Path, started: list[Up]
) -> None:
    registry = Registry.from_settings(load_settings(home=home))
    aliases = registry.aliases("iris")
    registry.move_alias("iris", "followed", aliases["production"])
    service = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "follow"},
        "spec": {"versions": [{"name": "a", "model": {"uri": "models:/iris@followed"}}]},
    }
    file = tmp_path / "follow.yaml"
    file.write_text(yaml.safe_dump(service))
    up = start_up(home, file, "--registry-poll", "0.5")
    started.append(up)
    server: str = up.state()["upstreams"]["a"]  # type: ignore[index]

    def state() -> dict[str, Any]:
        return dict(up.state())

    def pid() -> int:
        return int(next(p["pid"] for p in state()["processes"] if p["name"] == "model-a"))

    def serving() -> str:
        try:
            return str(httpx.get(f"{server}/metadata", timeout=5).json()["version"])
        except httpx.HTTPError:
            return ""

    first = pid()
    assert serving() == aliases["production"]
    assert state()["models"]["a"].startswith(f"iris/{aliases['production']} sha256:")
    time.sleep(3)  # six looks at the registry with nothing moved
    assert pid() == first
    registry.move_alias("iris", "followed", aliases["candidate"])
    wait_until("the new model served", lambda: serving() == aliases["candidate"], 60)
    assert pid() != first
    assert state()["models"]["a"].startswith(f"iris/{aliases['candidate']} ")
    assert "restarting model-a" in up.stop()
