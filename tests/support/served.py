"""An iris model trained, registered and loaded in this process, for tests that run the
model server's application in process rather than as a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpatterns.registry.registry import Registry
from mlpatterns.registry.store import LocalStore
from mlpatterns.serving.model import LoadedModel
from mlpatterns.training.steps import TrainingRequest, run_directly

__all__ = ["iris_model"]


def iris_model(folder: Path) -> LoadedModel:
    """Train iris into a registry under `folder`, fetch it back, and load it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLPATTERNS_HOME", str(folder))
        version = run_directly(TrainingRequest(dataset="iris", name="iris"))
    registry = Registry(LocalStore(folder / "registry"))
    fetched = folder / "fetched"
    registry.fetch(f"models:/iris/{version}", fetched)
    return LoadedModel(fetched)
