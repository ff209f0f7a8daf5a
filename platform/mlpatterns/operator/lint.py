"""The lint's findings on a ModelService in the cluster, as Warning Events on it: the
checks of `mlpatterns lint` that need only the object and the registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.lint.rules import Finding
from mlpatterns.lint.services import ServiceSource, service_findings
from mlpatterns.operator.reconcile import USER_METADATA, resource_data
from mlpatterns.registry.metadata import ModelMetadata
from mlpatterns.registry.registry import Registry
from mlpatterns.registry.store import StoreError

__all__ = ["REASON", "anti_patterns", "event_message"]

REASON = "AntiPattern"


def anti_patterns(body: Mapping[str, Any], registry: Registry | None) -> list[Finding]:
    """The findings on the ModelService `body`; none when it is not valid (the
    reconcile handler says why)."""
    data = resource_data(body, (*USER_METADATA, "annotations"))
    meta = data["metadata"]
    try:
        service = parse_model_service(data)
    except ModelServiceError:
        return []
    models: dict[str, ModelMetadata] = {}
    if registry is not None:
        for version in service.spec.versions:
            uri = version.model.uri if version.model else ""
            if not uri.startswith("models:/"):
                continue
            try:
                models[version.name] = registry.resolve(uri)
            except (StoreError, ValueError, OSError):
                continue
    where = f"ModelService {meta.get('namespace')}/{meta.get('name')}"
    return service_findings(ServiceSource(service, where), models)


def event_message(finding: Finding) -> str:
    """An Event's message: the rule, what is wrong, and how to fix it."""
    text = f"{finding.rule}: {finding.message}; fix: {finding.fix} (pattern: {finding.pattern})"
    return text[:1000]  # an Event's message is bounded (1 KiB)
