"""ModelService to Kubernetes objects (Deployment, Service, HPA, PDB, CronJob,
DestinationRule, VirtualService, ServiceMonitor, or a SeldonDeployment, ...): pure
functions. The operator applies what `render` returns; `mlpatterns render -f` prints
the same for GitOps."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlpatterns.api.modelservice import ModelService
from mlpatterns.render import workloads
from mlpatterns.render.common import HASH_ANNOTATION, RenderOptions
from mlpatterns.render.routing import monitoring_objects, routing_objects
from mlpatterns.render.seldon import seldon_objects
from mlpatterns.topology import served_versions

__all__ = ["RenderOptions", "object_key", "render", "with_hash"]


def render(service: ModelService, options: RenderOptions | None = None) -> list[dict[str, Any]]:
    """Every object `service` needs, in the order they are best applied."""
    options = options or RenderOptions()
    if service.spec.router == "seldon":  # Seldon Core makes the workloads
        return [with_hash(item) for item in seldon_objects(service, options)]
    objects: list[dict[str, Any]] = []
    for version in served_versions(service):
        objects.extend(workloads.version_objects(service, version, options))
    objects.extend(routing_objects(service, options))
    objects.extend(monitoring_objects(service, options))
    return [with_hash(item) for item in objects]


def object_key(item: dict[str, Any]) -> tuple[str, str, str]:
    return item["apiVersion"], item["kind"], item["metadata"]["name"]


def with_hash(item: dict[str, Any]) -> dict[str, Any]:
    """The object with a digest of its own content in an annotation, so a reconcile can
    tell that the live object already is what it would write, and write nothing."""
    digest = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:16]
    annotations = {**item["metadata"].get("annotations", {}), HASH_ANNOTATION: digest}
    return {**item, "metadata": {**item["metadata"], "annotations": annotations}}
