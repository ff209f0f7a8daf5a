"""Train-then-serve: what serves follows the registry. A version whose model is a
registry reference (`models:/iris@production`, `models:/iris/1.0.0`) is resolved to
the version and sha256 it names now. In a cluster its pods load exactly that, carry
the sha256 on their template, and so roll when an alias moves, and only then; on
one machine its server restarts."""

from __future__ import annotations

import logging

from mlpatterns.api.modelservice import ModelService
from mlpatterns.api.resolved import ResolvedModel
from mlpatterns.registry.references import ReferenceError, RegistryRef, parse_ref
from mlpatterns.registry.registry import Registry
from mlpatterns.registry.store import StoreError

__all__ = ["described", "resolve_models"]

log = logging.getLogger("mlpatterns.registry.resolve")


def resolve_models(service: ModelService, registry: Registry) -> dict[str, ResolvedModel]:
    """Each registry-served version's model as the registry names it now (a version
    whose reference cannot be resolved is left out, and logged)."""
    found: dict[str, ResolvedModel] = {}
    for version in service.spec.versions:
        if version.model is None:
            continue
        try:
            ref = parse_ref(version.model.uri)
            if not isinstance(ref, RegistryRef):
                continue
            target = ref.version or registry.aliases(ref.name).get(ref.alias or "")
            if target is None:
                log.warning("%s: %s names no version", service.metadata.name, version.model.uri)
                continue
            metadata = registry.model(ref.name, target)
        except (ReferenceError, StoreError, OSError) as error:
            name, uri = service.metadata.name, version.model.uri
            log.warning("%s: cannot resolve %s: %s", name, uri, error)
            continue
        found[version.name] = ResolvedModel(f"models:/{ref.name}/{target}", metadata.sha256)
    return found


def described(models: dict[str, ResolvedModel]) -> dict[str, str]:
    """What `status.models` shows."""
    return {name: model.describe() for name, model in sorted(models.items())}
