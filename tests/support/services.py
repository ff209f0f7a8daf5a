"""ModelServices for tests, built from their spec alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpatterns.api.load import parse_model_service
from mlpatterns.api.modelservice import ModelService

__all__ = ["document", "model_service"]


def document(spec: Mapping[str, Any], name: str = "iris") -> dict[str, Any]:
    """The ModelService as a user writes it."""
    return {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name},
        "spec": dict(spec),
    }


def model_service(spec: Mapping[str, Any], name: str = "iris") -> ModelService:
    """The ModelService, validated as everywhere else."""
    return parse_model_service(document(spec, name))
