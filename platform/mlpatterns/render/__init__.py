"""ModelService to Kubernetes objects (Deployment, Service, HPA, PDB, CronJob,
DestinationRule, VirtualService, ServiceMonitor, ...): pure functions. The operator
applies what `render` returns; `mlpatterns render -f` prints the same for GitOps."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from mlpatterns.api.modelservice import ModelService, Version
from mlpatterns.render import workloads
from mlpatterns.render.common import HASH_ANNOTATION, RenderOptions
from mlpatterns.render.routing import monitoring_objects, routing_objects

__all__ = ["RenderOptions", "object_key", "render", "with_hash"]

Renderer = Callable[[ModelService, Version, RenderOptions], list[dict[str, Any]]]
BY_PATTERN: dict[str, Renderer] = {
    "web-single": workloads.synchronous,
    "synchronous": workloads.synchronous,
    "asynchronous": workloads.asynchronous,
    "preprocess-prediction": workloads.preprocess_prediction,
    "batch": workloads.batch,
}


def render(service: ModelService, options: RenderOptions | None = None) -> list[dict[str, Any]]:
    """Every object `service` needs, in the order they are best applied."""
    options = options or RenderOptions()
    spec = service.spec
    versions = spec.versions
    if spec.pattern == "batch":  # one job, by the version that takes the traffic
        answering = spec.default_route()[0].version
        versions = [v for v in versions if v.name == answering]
    objects: list[dict[str, Any]] = []
    for version in versions:
        objects.extend(BY_PATTERN[spec.pattern](service, version, options))
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
