"""The lint's findings on a ModelService in the cluster, as Warning Events on it: the
checks of `mlpatterns lint` that need only the object and the registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.lint.rules import Finding
from mlpatterns.lint.services import ServiceSource, served_models, service_findings
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

    def lookup(uri: str) -> ModelMetadata | None:
        if registry is None:
            return None
        try:
            return registry.resolve(uri)
        except (StoreError, ValueError, OSError):  # unresolved: its checks are left out
            return None

    where = f"ModelService {meta.get('namespace')}/{meta.get('name')}"
    return service_findings(ServiceSource(service, where), served_models(service, lookup))


def event_message(finding: Finding) -> str:
    """An Event's message: the rule, what is wrong, and how to fix it."""
    text = f"{finding.rule}: {finding.message}; fix: {finding.fix} (pattern: {finding.pattern})"
    return text[:1000]  # an Event's message is bounded (1 KiB)
