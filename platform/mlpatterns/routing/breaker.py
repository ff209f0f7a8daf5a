"""A circuit breaker for shadow copies: a shadow that keeps failing stops receiving them.

Copies to a shadow that refuses connections or answers 5xx cost the gateway a
connection attempt each, on the core that also answers the clients. After
`failures` in a row the breaker opens and copies are skipped (and counted) for a
cooldown; then one copy goes through as a probe. A success closes the breaker; a
failed probe opens it again for twice as long, up to `max_cooldown`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ShadowBreaker"]


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0
    probing: bool = False


class ShadowBreaker:
    def __init__(
        self,
        failures: int = 5,
        cooldown: float = 1.0,
        max_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or cooldown <= 0 or max_cooldown < cooldown:
            raise ValueError("need failures >= 1 and 0 < cooldown <= max_cooldown")
        self._threshold = failures
        self._cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._clock = clock
        self._states: dict[str, _State] = {}

    def allow(self, version: str) -> bool:
        """Whether to send this copy. While open, no; once the cooldown is over, one probe."""
        state = self._states.get(version)
        if state is None or state.failures < self._threshold:
            return True
        if state.probing or self._clock() < state.open_until:
            return False
        state.probing = True
        return True

    def record(self, version: str, succeeded: bool) -> None:
        state = self._states.setdefault(version, _State())
        was_probe, state.probing = state.probing, False
        if succeeded:
            self._states[version] = _State()
            return
        state.failures += 1
        if state.failures < self._threshold:
            return
        if was_probe or state.cooldown == 0:
            state.cooldown = (
                min(state.cooldown * 2, self._max_cooldown) if was_probe else self._cooldown
            )
            state.open_until = self._clock() + state.cooldown

    def is_open(self, version: str) -> bool:
        state = self._states.get(version)
        return state is not None and state.failures >= self._threshold
