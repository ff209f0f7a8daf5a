"""Training-to-serving on the test control plane: the operator drives `spec.rollout`
from figures a real Prometheus scraped off real model servers and a real gateway.

The ModelService lives in the cluster (kwok runs its pods); its routes ConfigMap is
copied, as kubelet copies a mounted ConfigMap, into the file of an embedded gateway
on loopback that serves real traffic; Prometheus scrapes that gateway and its
model servers; the operator, told Prometheus' URL and reading the prediction logs,
analyses the candidate and moves the weights. A good candidate is promoted step by
step; a new candidate starts again, is paused and resumed with the kubectl plugin,
and is rolled back when its server stops answering. Pods that serve an alias roll
when it moves, and only then."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sklearn.datasets import load_iris

from mlpatterns.registry.registry import Registry
from mlpatterns.settings import load_settings
from tests.cluster.conftest import repo_path
from tests.support.controlplane import ControlPlane, ControlPlaneError
from tests.support.embedded import Up, start_up
from tests.support.load import recorded_load
from tests.support.operator import Operator, get_json, install_platform, wait_for
from tests.support.servers import prometheus_server
from tests.support.training import aliased_iris

pytestmark = pytest.mark.cluster
NAME = "iris-rollout"
NAMESPACE = "mlp-rollout"
ROWS = [list(map(float, row)) for row in load_iris().data]


def served(split: dict[str, int]) -> dict[str, Any]:
    """The service as the gateway on loopback first runs it (no rollout of its own)."""
    return {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": NAME},
        "spec": {
            "versions": [
                {"name": "a", "model": {"uri": "models:/iris@production"}},
                {
                    "name": "b",
                    "model": {"uri": "models:/iris@candidate"},
                    "parameters": {"timeoutSeconds": 0.5},
                },
            ],
            "traffic": {"split": [{"version": v, "weight": w} for v, w in split.items()]},
        },
    }


def with_rollout(candidate: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    service = served({"a": 100})
    service["metadata"]["namespace"] = NAMESPACE
    service["spec"]["router"] = "gateway"
    service["spec"]["versions"][1]["model"]["uri"] = candidate
    service["spec"]["rollout"] = {
        "candidate": "b",
        "steps": steps,
        "analysis": {
            "intervalSeconds": 3,
            "minRequests": 5,
            "failureLimit": 1,
            "maxErrorRate": 0.05,
            "minShadowAgreement": 0.8,
        },
    }
    return service


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rollout-cluster-home")
    aliased_iris(folder)
    return folder


@pytest.fixture(scope="module")
def gateway(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    file = tmp_path_factory.mktemp("rollout-gateway") / "routes.yaml"
    file.write_text(yaml.safe_dump(served({"a": 100})))
    up = start_up(home, file)
    yield up
    up.stop()


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane,
    tool_env: dict[str, str],
    home: Path,
    gateway: Up,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    folder = tmp_path_factory.mktemp("rollout-platform")
    upstreams: dict[str, str] = gateway.state()["upstreams"]  # type: ignore[assignment]
    targets = [u.removeprefix("http://") for u in (gateway.url, *upstreams.values())]
    rules = repo_path("charts", "mlpatterns", "files", "alert-rules.yaml")
    with prometheus_server(folder / "prometheus", targets, rules) as prometheus:
        _, running = install_platform(
            control_plane, tool_env, NAMESPACE, folder,
            "--prometheus-url", prometheus, "--rollout-tick", "0.5", "--registry-poll", "0.5",
            env={"MLPATTERNS_HOME": str(home)},
        )  # fmt: skip
        yield running
        running.stop()
    control_plane.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


class RoutesCopy:
    """Copies the routes ConfigMap into the gateway's file, as kubelet does for a
    pod that mounts it, and records each distinct default split it saw."""

    def __init__(self, control_plane: ControlPlane, file: Path) -> None:
        self.control_plane, self.file = control_plane, file
        self.splits: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            try:
                found = get_json(self.control_plane, "configmap", f"{NAME}-routes", "-n", NAMESPACE)
            except ControlPlaneError:  # not rendered yet
                continue
            text = found["data"]["modelservice.yaml"]
            if text != self.file.read_text():
                self.file.write_text(text)
            spec = yaml.safe_load(text)["spec"]
            split = {d["version"]: d.get("weight", 100) for d in spec["traffic"]["split"]}
            if spec["traffic"].get("shadow"):
                split["shadow:" + spec["traffic"]["shadow"]["version"]] = 100
            if not self.splits or self.splits[-1] != split:
                self.splits.append(split)

    def __enter__(self) -> RoutesCopy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def rollout_of(control_plane: ControlPlane) -> dict[str, Any]:
    found = get_json(control_plane, "modelservice", NAME, "-n", NAMESPACE)
    return dict((found.get("status") or {}).get("rollout") or {})


def plugin(tool_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl-mlpatterns", "rollout", *args, NAME, "-n", NAMESPACE],
        env={**tool_env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=90,
        check=False,
    )  # fmt: skip


def test_the_operator_promotes_from_prometheus_figures_and_rolls_back(
    control_plane: ControlPlane, tool_env: dict[str, str], gateway: Up, operator: Operator
) -> None:
    def apply(service: dict[str, Any]) -> None:
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(service))

    def reached(phase: str, step: int | None = None) -> bool:
        now = rollout_of(control_plane)
        return now.get("phase") == phase and (step is None or now.get("step") == step)

    steps = [
        {"shadow": True, "requests": 15},
        {"weight": 10, "requests": 5},
        {"weight": 50, "requests": 10},
    ]
    with RoutesCopy(control_plane, gateway.file) as routes, recorded_load(gateway.url, ROWS):
        apply(with_rollout("models:/iris@candidate", steps))
        wait_for("promoted", lambda: reached("Succeeded"), 150, operator)
        wait_for("routes b=100", lambda: routes.splits[-1:] == [{"b": 100}], 30, operator)
    assert routes.splits == [
        {"a": 100, "shadow:b": 100},
        {"a": 90, "b": 10},
        {"a": 50, "b": 50},
        {"b": 100},
    ]
    events = get_json(control_plane, "events", "-n", NAMESPACE,
                      "--field-selector", f"involvedObject.name={NAME}")  # fmt: skip
    reasons = {e["reason"] for e in events["items"]}
    assert {"RolloutStarted", "RolloutAdvanced", "RolloutPromoted"} <= reasons
    quiet = get_json(control_plane, "modelservice", NAME, "-n", NAMESPACE)
    time.sleep(3)  # six ticks: a finished rollout writes nothing
    assert (
        get_json(control_plane, "modelservice", NAME, "-n", NAMESPACE)["metadata"][
            "resourceVersion"
        ]
        == quiet["metadata"]["resourceVersion"]
    )

    registry = Registry.from_settings(load_settings(home=gateway.home))
    version = registry.aliases("iris")["candidate"]
    steps = [{"weight": 10, "requests": 100_000}]
    server = gateway.state()["processes"]  # type: ignore[index]
    candidate_pid = next(p["pid"] for p in server if p["name"] == "model-b")  # type: ignore[index]
    with RoutesCopy(control_plane, gateway.file), recorded_load(gateway.url, ROWS):
        apply(with_rollout(f"models:/iris/{version}", steps))  # a new candidate: a new rollout
        wait_for("restarted", lambda: reached("Progressing", 0), 60, operator)
        paused = plugin(tool_env, "pause")
        assert paused.returncode == 0, paused.stdout + paused.stderr
        assert "Paused, step 1 of 1" in paused.stdout
        resumed = plugin(tool_env, "resume")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        os.kill(candidate_pid, signal.SIGSTOP)  # the candidate stops answering
        try:
            wait_for("rolled back", lambda: reached("RolledBack"), 90, operator)
        finally:
            os.kill(candidate_pid, signal.SIGCONT)
    shown = plugin(tool_env, "status")
    assert shown.returncode == 0, shown.stderr
    assert "RolledBack" in shown.stdout
    assert "weights in force: a=100" in shown.stdout
    assert "errorRate" in rollout_of(control_plane)["message"]


def test_pods_roll_when_the_alias_they_serve_moves_and_only_then(
    control_plane: ControlPlane, home: Path, operator: Operator
) -> None:
    name = "iris-follow"
    registry = Registry.from_settings(load_settings(home=home))
    aliases = registry.aliases("iris")
    stable, good = aliases["production"], aliases["candidate"]
    service = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"versions": [{"name": "a", "model": {"uri": "models:/iris@production"}}]},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(service))

    def template() -> dict[str, Any]:
        found = get_json(control_plane, "deployment", f"{name}-a", "-n", NAMESPACE)
        return dict(found["spec"]["template"])

    def serves(version: str) -> bool:
        try:
            pod = template()
        except ControlPlaneError:
            return False
        sha = registry.model("iris", version).sha256
        fetch = pod["spec"]["initContainers"][0]["args"]
        annotations = pod["metadata"].get("annotations") or {}
        return annotations.get("mlpatterns.io/model-sha256") == sha and (
            f"models:/iris/{version}" in fetch
        )

    def shown() -> str:
        found = get_json(control_plane, "modelservice", name, "-n", NAMESPACE)
        return str((found.get("status") or {}).get("models", {}).get("a", ""))

    wait_for("pinned to production", lambda: serves(stable), 60, operator)
    wait_for("status names it", lambda: shown().startswith(f"iris/{stable} sha256:"), 30, operator)
    before = get_json(control_plane, "deployment", f"{name}-a", "-n", NAMESPACE)
    time.sleep(3)  # six looks at the registry with nothing moved: nothing written
    after = get_json(control_plane, "deployment", f"{name}-a", "-n", NAMESPACE)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    registry.move_alias("iris", "production", good)
    try:
        wait_for("rolled to the new production", lambda: serves(good), 30, operator)
        wait_for("status follows", lambda: shown().startswith(f"iris/{good} "), 30, operator)
    finally:
        registry.move_alias("iris", "production", stable)
