"""Success rates and their comparison, shared by the A/B report and a rollout's
analysis: what counts as a success, Wilson intervals, the two-proportion z-test."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["Z_95", "outcome_success", "two_proportion_z", "wilson_interval"]

Z_95 = 1.959964


def outcome_success(outcome: Any, predicted: list[str]) -> bool | None:
    """A feedback outcome as a success: true/false as given, a number when above 0, a
    label when it is the answer's first; None for anything else."""
    if isinstance(outcome, bool):
        return outcome
    if isinstance(outcome, (int, float)):
        return outcome > 0
    if isinstance(outcome, str):
        return bool(predicted) and predicted[0] == outcome
    return None


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_z(s1: int, n1: int, s2: int, n2: int) -> float | None:
    """The pooled two-proportion z statistic of rate 1 minus rate 2 (None when undefined:
    no trials on a side, or every trial alike)."""
    if n1 == 0 or n2 == 0:
        return None
    pooled = (s1 + s2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0:
        return None
    return (s1 / n1 - s2 / n2) / math.sqrt(variance)
