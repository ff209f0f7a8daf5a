"""Under router seldon, Seldon Core's report becomes the ModelService's status; a
cluster without Seldon's CRD gets a condition that says what to install."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from mlpatterns.api.load import load_model_service
from mlpatterns.operator.handlers import InvalidSpecError, resolve_router
from mlpatterns.operator.kube import Kube
from mlpatterns.operator.seldon import seldon_failures, seldon_workloads

pytestmark = pytest.mark.unit
EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "seldon" / "modelservice.yaml"


def test_seldon_s_deployment_status_reads_as_deployments() -> None:
    reported = {
        "status": {
            "state": "Creating",
            "deploymentStatus": {
                "iris-current-0-model": {"replicas": 2, "availableReplicas": 1},
                "iris-candidate-0-model": {"replicas": 1},
            },
        }
    }
    assert seldon_workloads(reported) == [
        {"metadata": {"name": "iris-candidate-0-model"}, "spec": {"replicas": 1},
         "status": {"readyReplicas": 0}},
        {"metadata": {"name": "iris-current-0-model"}, "spec": {"replicas": 2},
         "status": {"readyReplicas": 1}},
    ]  # fmt: skip
    assert seldon_failures(reported) == []
    assert seldon_workloads(None) == []
    assert seldon_workloads({"status": {"deploymentStatus": {"x": "not a mapping"}}}) == []


def test_seldon_s_failed_state_is_the_reason() -> None:
    [failure] = seldon_failures({"status": {"state": "Failed", "description": "x" * 1000}})
    assert failure.reason == "SeldonFailed"
    assert len(failure.message) == 400


class ServesNothing:
    """A cluster without Seldon Core, for a decision that only asks what is served."""

    def serves(self, api_version: str, kind: str) -> bool:
        return False


def test_router_seldon_without_seldon_s_crd_says_what_to_install() -> None:
    cluster = cast(Kube, ServesNothing())
    with pytest.raises(InvalidSpecError) as refused:
        resolve_router(cluster, load_model_service(EXAMPLE), "auto")
    assert refused.value.reason == "SeldonMissing"
    assert "install Seldon Core 1.17" in refused.value.message
