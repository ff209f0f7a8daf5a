"""The training pipelines as Kubeflow Pipelines' Kubernetes-native resources: a
`Pipeline` and a `PipelineVersion` (pipelines.kubeflow.org/v2beta1) per compiled
IR, for clusters where KFP stores pipelines as Kubernetes objects. Generated from
the compiled IR, never edited by hand; the version's name carries the IR's digest,
so a changed pipeline is a new version and an unchanged one the same object."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["API_VERSION", "pipeline_objects"]

API_VERSION = "pipelines.kubeflow.org/v2beta1"


def pipeline_objects(
    ir: dict[str, Any], namespace: str | None = None, platform: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A Pipeline and its PipelineVersion for the compiled `ir` and its `platform` spec
    (the Kubernetes settings of its tasks, such as Secrets as environment)."""
    info = ir.get("pipelineInfo") or {}
    name = str(info.get("name") or "").replace("_", "-")
    if not name:
        raise ValueError("the compiled pipeline has no pipelineInfo.name")
    description = str(info.get("description") or "")
    digest = hashlib.sha256(json.dumps([ir, platform], sort_keys=True).encode()).hexdigest()[:10]
    version = f"{name}-{digest}"
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "mlpatterns",
        "app.kubernetes.io/component": "training-pipeline",
        "app.kubernetes.io/managed-by": "mlpatterns",
    }

    def meta(object_name: str) -> dict[str, Any]:
        found: dict[str, Any] = {"name": object_name, "labels": labels}
        if namespace:
            found["namespace"] = namespace
        return found

    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Pipeline",
            "metadata": meta(name),
            "spec": {"displayName": name, "description": description},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "PipelineVersion",
            "metadata": meta(version),
            "spec": {
                "pipelineName": name,
                "versionName": version,
                "displayName": f"{name} ({digest})",
                "description": description,
                "pipelineSpec": ir,
                **({"platformSpec": platform} if platform else {}),
            },
        },
    ]
