"""Circuit breaking on a version's primary path: how many requests it may have in
flight, and how many failures in a row take it out of rotation for a while.

The gateway enforces both (a refused request gets 503 with `Retry-After` at once, or
goes to the declared fallback version); for Istio they render as the DestinationRule
subset's `connectionPool` and `outlierDetection`, with the same numbers.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import Field, model_validator

from mlpatterns.api.base import Strict

__all__ = ["MAX_EJECTION_SECONDS", "CircuitBreaker", "check_fallbacks"]

MAX_EJECTION_SECONDS = 300.0  # Envoy's default max_ejection_time


class CircuitBreaker(Strict):
    max_concurrent: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        alias="maxConcurrent",
        description="Requests in flight to this version at most; more are refused at once.",
    )
    consecutive_errors: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        alias="consecutiveErrors",
        description="Failures in a row (5xx, refused, timed out) that eject this version.",
    )
    ejection_seconds: float = Field(
        default=30.0,
        gt=0,
        le=MAX_EJECTION_SECONDS,
        alias="ejectionSeconds",
        description="How long an ejection lasts; each further one in a row lasts longer, "
        f"up to {MAX_EJECTION_SECONDS:g} s.",
    )
    fallback: str | None = Field(
        default=None,
        description="The version that answers what this one refuses, instead of a 503.",
    )

    @model_validator(mode="after")
    def _breaks_something(self) -> CircuitBreaker:
        if self.max_concurrent is None and self.consecutive_errors is None:
            raise ValueError(
                "circuitBreaker needs maxConcurrent (requests in flight at most), "
                "consecutiveErrors (failures in a row that eject the version), or both"
            )
        return self


def check_fallbacks(breakers: dict[str, CircuitBreaker], versions: Collection[str]) -> None:
    """Each fallback is another known version, and one without a fallback of its own:
    a refused request moves once, never around a loop."""
    for name, breaker in breakers.items():
        fallback = breaker.fallback
        if fallback is None:
            continue
        where = f"versions[{name}].circuitBreaker.fallback"
        if fallback not in versions:
            raise ValueError(
                f"{where} names version {fallback!r}, which is not in spec.versions "
                f"{sorted(versions)}"
            )
        if fallback == name:
            raise ValueError(f"{where} is the version itself; name another version, or drop it")
        if name_of_next := (breakers[fallback].fallback if fallback in breakers else None):
            raise ValueError(
                f"{where} is {fallback!r}, which falls back to {name_of_next!r} in turn; "
                "a fallback must answer itself (drop its own fallback)"
            )
