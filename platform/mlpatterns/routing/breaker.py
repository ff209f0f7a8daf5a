"""Circuit breakers: a version that keeps failing stops receiving requests for a while.

`Breaker` counts failures in a row per version. After `failures` of them it opens
for a cooldown; then one request goes through as a probe. A success closes it; a
failed probe opens it again for twice as long, up to `max_cooldown`. The gateway
keeps one for shadow copies (a shadow that refuses connections or answers 5xx
would cost a connection attempt per request on the core that answers the clients:
its copies are skipped and counted while it is open), and `CircuitBreakers` for
the primary path of the versions that declare a `circuitBreaker`: requests in flight
bounded, and an open breaker ejects the version (its requests get 503 with
`Retry-After`, or go to its fallback).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from math import ceil
from typing import NamedTuple

from mlpatterns.api.breaker import MAX_EJECTION_SECONDS, CircuitBreaker
from mlpatterns.routing.table import RouteTable

__all__ = ["Breaker", "CircuitBreakers", "Refusal"]


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0
    probing: bool = False


class Breaker:
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

    def seconds_left(self, version: str) -> float:
        """How long until an open breaker lets a probe through (0 when it would now)."""
        state = self._states.get(version)
        return max(0.0, state.open_until - self._clock()) if state else 0.0


class Refusal(NamedTuple):
    reason: str  # "ejected" or "full"
    retry_after: int  # seconds, for the Retry-After header


class CircuitBreakers:
    """The primary path's breakers, for the versions with a `circuitBreaker`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._breakers: dict[str, tuple[CircuitBreaker, Breaker]] = {}

    def refusal(self, version: str, spec: CircuitBreaker) -> Refusal | None:
        """Why a request to `version` may not go now, or None (it may: then `started`)."""
        if spec.max_concurrent is not None and self.in_flight(version) >= spec.max_concurrent:
            return Refusal("full", 1)
        breaker = self._breaker(version, spec)
        if breaker is not None and not breaker.allow(version):
            return Refusal("ejected", max(1, ceil(breaker.seconds_left(version))))
        return None

    def admit(
        self, version: str, spec: CircuitBreaker, table: RouteTable
    ) -> tuple[str | None, Refusal | None]:
        """Where a request decided for `version` goes: `version` (no refusal), its
        fallback (with `version`'s refusal), or nowhere (None, and the refusal). A
        fallback switched off (`active: false`) takes nothing."""
        refusal = self.refusal(version, spec)
        if refusal is None:
            return version, None
        fallback = spec.fallback
        if fallback is None or fallback in table.switched_off:
            return None, refusal
        policy = table.policies.get(fallback)
        its_own = policy.breaker if policy is not None else None
        if its_own is not None and self.refusal(fallback, its_own) is not None:
            return None, refusal
        return fallback, refusal

    def started(self, version: str) -> None:
        self._in_flight[version] = self._in_flight.get(version, 0) + 1

    def finished(self, version: str, spec: CircuitBreaker, status: int | None) -> None:
        """A request `started` ended with `status` (None: it was cancelled)."""
        self._in_flight[version] -= 1
        breaker = self._breaker(version, spec)
        if breaker is not None and status is not None:
            breaker.record(version, succeeded=status < 500)

    def in_flight(self, version: str) -> int:
        return self._in_flight.get(version, 0)

    def _breaker(self, version: str, spec: CircuitBreaker) -> Breaker | None:
        """The version's breaker, made again when a reload changed its numbers."""
        if spec.consecutive_errors is None:
            return None
        known = self._breakers.get(version)
        if known is None or known[0] != spec:
            breaker = Breaker(
                failures=spec.consecutive_errors,
                cooldown=spec.ejection_seconds,
                max_cooldown=MAX_EJECTION_SECONDS,
                clock=self._clock,
            )
            known = self._breakers[version] = (spec, breaker)
        return known[1]
