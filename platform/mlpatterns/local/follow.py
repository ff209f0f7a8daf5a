"""The embedded mode's side of train-then-serve: what serves follows the registry.
Every few seconds the versions served from a registry reference
(`models:/iris@production`) are resolved again; a version whose reference now names
another model has its server restarted, which fetches it and checks its sha256.
Nothing restarts while nothing moved."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlpatterns.api.modelservice import ModelService
from mlpatterns.api.resolved import ResolvedModel
from mlpatterns.local.supervisor import Supervisor
from mlpatterns.registry.registry import Registry
from mlpatterns.registry.resolve import resolve_models

__all__ = ["ModelFollower"]

log = logging.getLogger("mlpatterns.local.follow")


@dataclass
class ModelFollower:
    service: ModelService
    registry: Registry
    supervisor: Supervisor
    every: float = 10.0
    say: Callable[[str], None] = print
    served: dict[str, ResolvedModel] = field(default_factory=dict)
    _next: float = 0.0

    def __post_init__(self) -> None:
        self.served = resolve_models(self.service, self.registry)
        self._next = time.monotonic() + self.every

    def describe(self, version: str) -> str:
        """What `version` serves, resolved ("" when not from the registry)."""
        model = self.served.get(version)
        return model.describe() if model else ""

    def tick(self, now: float | None = None) -> list[str]:
        """Restart the versions whose model moved; their names."""
        now = time.monotonic() if now is None else now
        if now < self._next:
            return []
        self._next = now + self.every
        moved = []
        for version, model in resolve_models(self.service, self.registry).items():
            before = self.served.get(version)
            if before is not None and before != model:
                restarted = self.supervisor.restart(version)
                self.say(
                    f"version {version}: {before.describe()} -> {model.describe()}; "
                    f"restarting {', '.join(restarted) or 'nothing'}"
                )
                moved.append(version)
            self.served[version] = model
        return moved
