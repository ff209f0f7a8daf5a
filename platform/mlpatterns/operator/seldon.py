"""Under `spec.router: seldon`, Seldon Core's operator makes the Deployments; what it
reports in the SeldonDeployment's status becomes the ModelService's. Plain functions,
no API calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpatterns.operator.pods import PodFailure

__all__ = ["seldon_failures", "seldon_workloads"]


def seldon_workloads(deployment: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Seldon's `status.deploymentStatus` as Deployments' name, replicas and ready
    replicas (its names are `<name>-<predictor>-...`, a predictor per version)."""
    reported = ((deployment or {}).get("status") or {}).get("deploymentStatus") or {}
    return [
        {
            "metadata": {"name": name},
            "spec": {"replicas": int(entry.get("replicas") or 0)},
            "status": {"readyReplicas": int(entry.get("availableReplicas") or 0)},
        }
        for name, entry in sorted(reported.items())
        if isinstance(entry, Mapping)
    ]


def seldon_failures(deployment: Mapping[str, Any] | None) -> list[PodFailure]:
    """Seldon's own verdict: state Failed, with its description, makes it Degraded."""
    status = (deployment or {}).get("status") or {}
    if status.get("state") != "Failed":
        return []
    message = str(status.get("description") or "Seldon Core reports the deployment Failed")
    return [PodFailure("seldon", "SeldonFailed", message[:400])]
