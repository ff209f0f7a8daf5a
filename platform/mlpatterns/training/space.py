"""A search space and the trials it plans: the grid, or random samples. Pure and
light (no scikit-learn), so that the CLI checks a space before any work.

A space maps each parameter to a list of choices or a range:

    {"model_type": ["logreg", "svc"],                  # architecture: a searchable choice
     "C": {"low": 0.01, "high": 100, "log": true},     # range: sampled, or `num` grid points
     "kernel": ["rbf", "linear"]}
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import numpy as np

__all__ = ["SearchSpaceError", "expand"]


class SearchSpaceError(ValueError):
    pass


def _grid_values(name: str, spec: Any) -> list[Any]:
    if isinstance(spec, list):
        if not spec:
            raise SearchSpaceError(f"{name}: the list of choices is empty")
        return spec
    if isinstance(spec, dict) and {"low", "high"} <= spec.keys():
        low, high, num = float(spec["low"]), float(spec["high"]), int(spec.get("num", 0))
        if num < 2:
            raise SearchSpaceError(f"{name}: a grid over a range needs `num` >= 2 points")
        if spec.get("log"):
            return [float(v) for v in np.geomspace(low, high, num)]
        return [float(v) for v in np.linspace(low, high, num)]
    raise SearchSpaceError(
        f"{name}: expected a list of choices or a range "
        f"{{'low': .., 'high': .., 'log'?: bool}}, got {spec!r}"
    )


def _sample(name: str, spec: Any, rng: random.Random) -> Any:
    if isinstance(spec, list):
        return rng.choice(_grid_values(name, spec))
    if isinstance(spec, dict) and {"low", "high"} <= spec.keys():
        low, high = float(spec["low"]), float(spec["high"])
        if low >= high:
            raise SearchSpaceError(f"{name}: low must be below high")
        if spec.get("log"):
            if low <= 0:
                raise SearchSpaceError(f"{name}: a log range needs low > 0")
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        if spec.get("integer"):
            return rng.randint(int(low), int(high))
        return rng.uniform(low, high)
    return _grid_values(name, spec)  # raises with the message


def expand(space: dict[str, Any], strategy: str, trials: int, seed: int) -> list[dict[str, Any]]:
    """The parameters of each trial: the grid (at most `trials` of it) or random samples."""
    if trials < 1:
        raise SearchSpaceError("trials must be at least 1")
    if not space:
        raise SearchSpaceError("the search space is empty")
    if strategy == "grid":
        names = sorted(space)
        grid = itertools.product(*(_grid_values(n, space[n]) for n in names))
        return [dict(zip(names, values, strict=True)) for values in itertools.islice(grid, trials)]
    if strategy == "random":
        rng = random.Random(seed)  # noqa: S311 - reproducible sampling, not secrets
        return [{n: _sample(n, space[n], rng) for n in sorted(space)} for _ in range(trials)]
    raise SearchSpaceError(f"unknown strategy {strategy!r}: use grid or random")
