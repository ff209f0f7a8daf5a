"""spec.router seldon through the operator, with the chart's least-privilege
credentials, on the real control plane with Seldon Core's CRD: the ModelService
becomes a SeldonDeployment it owns, a traffic switch rewrites the predictors'
weights, and what Seldon reports of its Deployments becomes the ModelService's status.

Seldon Core's own operator (a Go program with admission webhooks) does not run here,
so nothing turns the SeldonDeployment into pods; where it would report, the test
writes that report into the SeldonDeployment's status subresource, as Seldon's
operator does, and says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import repo_path
from tests.support.controlplane import ControlPlane
from tests.support.operator import Operator, condition, get_json, install_platform, wait_for

pytestmark = pytest.mark.cluster
NAME = "iris-seldon"


class Platform:
    def __init__(self, control_plane: ControlPlane, namespace: str, operator: Operator) -> None:
        self.control_plane, self.namespace, self.operator = control_plane, namespace, operator

    def get(self, *args: str) -> dict[str, Any]:
        return get_json(self.control_plane, *args, "-n", self.namespace)

    def kubectl(self, *args: str) -> str:
        return self.control_plane.kubectl(*args, "-n", self.namespace)

    def predictors(self) -> dict[str, dict[str, Any]]:
        found = self.get("seldondeployments")["items"]
        if not found:
            return {}
        return {p["name"]: p for p in found[0]["spec"]["predictors"]}

    def status(self) -> dict[str, Any]:
        return dict(self.get("modelservice", NAME).get("status") or {})


@pytest.fixture(scope="module")
def platform(
    control_plane: ControlPlane,
    tool_env: dict[str, str],
    seldon_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    folder: Path = tmp_path_factory.mktemp("seldon-platform")
    namespace = "mlp-seldon"
    _, operator = install_platform(control_plane, tool_env, namespace, folder)
    yield Platform(control_plane, namespace, operator)
    operator.stop()
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


def seldon_reports(platform: Platform, status: dict[str, Any]) -> None:
    """Stand-in for Seldon Core's operator: its report, in the status subresource."""
    platform.kubectl(
        "patch", "seldondeployment", NAME, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def test_a_seldon_model_service_becomes_a_seldon_deployment_the_operator_keeps(
    platform: Platform,
) -> None:
    platform.kubectl("apply", "-f", str(repo_path("manifests", "seldon", "modelservice.yaml")))
    wait_for("the SeldonDeployment", lambda: bool(platform.predictors()), 60, platform.operator)
    predictors = platform.predictors()
    assert predictors["current"]["traffic"] == 90
    assert predictors["candidate"]["traffic"] == 10
    assert predictors["challenger"]["shadow"] is True
    made = platform.get("seldondeployment", NAME)
    assert made["metadata"]["ownerReferences"][0]["kind"] == "ModelService"
    mine = platform.get("deployments", "-l", f"mlpatterns.io/service={NAME}")
    assert mine["items"] == []  # Seldon Core makes them, not the operator
    wait_for("router seldon", lambda: platform.status().get("router") == "seldon", 60,
             platform.operator)  # fmt: skip
    assert condition(platform.get("modelservice", NAME), "Ready")["status"] == "False"

    split = [{"version": "current", "weight": 50}, {"version": "candidate", "weight": 50}]
    platform.kubectl(
        "patch", "modelservice", NAME, "--type=merge",
        "-p", json.dumps({"spec": {"traffic": {"split": split}}}),
    )  # fmt: skip

    def switched() -> bool:
        found = platform.predictors()
        return [found[v].get("traffic") for v in ("current", "candidate")] == [50, 50]

    wait_for("50/50 in the predictors", switched, 60, platform.operator)

    reported = {
        f"{NAME}-{version}-0-model": {"replicas": replicas, "availableReplicas": replicas}
        for version, replicas in (("current", 2), ("candidate", 1), ("challenger", 1))
    }
    seldon_reports(platform, {"state": "Available", "deploymentStatus": reported})

    def ready() -> bool:
        return condition(platform.get("modelservice", NAME), "Ready").get("status") == "True"

    wait_for("Ready from Seldon's report", ready, 60, platform.operator)
    status = platform.status()
    assert status["ready"] == "4/4"
    assert {v["name"]: v["readyReplicas"] for v in status["versions"]} == {
        "current": 2,
        "candidate": 1,
        "challenger": 1,
    }

    seldon_reports(
        platform, {"state": "Failed", "description": "Cannot find image mlpatterns-seldon:9"}
    )

    def degraded() -> bool:
        found = condition(platform.get("modelservice", NAME), "Degraded")
        return found.get("reason") == "SeldonFailed"

    wait_for("Degraded from Seldon's report", degraded, 60, platform.operator)
    message = condition(platform.get("modelservice", NAME), "Degraded")["message"]
    assert "Cannot find image mlpatterns-seldon:9" in message
