"""Drift of live inputs and predictions against a model's training profile (the
profile every registered version carries). Pure functions over numbers, numpy the
only library: the model server's metrics and `mlpatterns monitor` share them.

- Population stability index (PSI) per feature, over the training histogram's bins
  with an open bin below and above them for values training never saw, counts
  smoothed by half a value per bin; the usual reading: under 0.1 stable, 0.1 to
  0.25 a moderate shift, over 0.25 a large one.
- A two-sample Kolmogorov-Smirnov statistic of the live values against the training
  distribution (its CDF taken from the histogram), with the asymptotic p-value.
- The predicted-class mix's PSI against training's class frequencies.
- The share of requests whose input repeats one already seen in the window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlpatterns.registry.metadata import FeatureProfile

__all__ = [
    "SMOOTHING",
    "FeatureDrift",
    "class_mix_psi",
    "feature_drift",
    "kolmogorov_p_value",
    "population_stability",
    "repeated_share",
]

SMOOTHING = 0.5  # added to every bin's count (Laplace), so that no share is zero


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    count: int  # live values compared (missing ones left out)
    psi: float
    ks: float  # the largest gap between the live and the training CDF
    p_value: float  # of the KS statistic: small means the distributions differ
    edges: tuple[float, ...] = ()  # the training histogram's bin edges
    training: tuple[float, ...] = ()  # training's share in each bin
    live: tuple[float, ...] = ()  # the live share below the first edge, in each bin, above


def population_stability(expected: Sequence[float], observed: Sequence[float]) -> float:
    """PSI of `observed` counts against `expected` counts over the same bins, each
    count smoothed by SMOOTHING (Laplace), so that a bin one side left empty weighs
    by how many values the other side put there, not by an arbitrary floor."""
    if len(expected) != len(observed):
        raise ValueError(f"{len(expected)} expected bins against {len(observed)} observed")
    if sum(expected) <= 0 or sum(observed) <= 0:
        return 0.0
    bins = len(expected)
    expected_total = sum(expected) + SMOOTHING * bins
    observed_total = sum(observed) + SMOOTHING * bins
    psi = 0.0
    for e, o in zip(expected, observed, strict=True):
        p = (e + SMOOTHING) / expected_total
        q = (o + SMOOTHING) / observed_total
        psi += (q - p) * math.log(q / p)
    return psi


def _binned(edges: npt.NDArray[np.float64], values: npt.NDArray[np.float64]) -> list[int]:
    """Counts of `values` in: below the first edge, each of the bins, above the last
    (the last bin holds its right edge, as numpy's histogram does)."""
    index = np.searchsorted(edges, values, side="right")
    index[values == edges[-1]] = len(edges) - 1
    return [int(n) for n in np.bincount(index, minlength=len(edges) + 1)]


def kolmogorov_p_value(statistic: float, n: int, m: int) -> float:
    """The asymptotic p-value of a two-sample KS statistic for samples of n and m:
    Q(lambda) = 2 sum_k (-1)^(k-1) exp(-2 k^2 lambda^2), with Stephens' correction."""
    if n == 0 or m == 0:
        return 1.0
    effective = math.sqrt(n * m / (n + m))
    scaled = (effective + 0.12 + 0.11 / effective) * statistic
    if scaled < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * scaled * scaled)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def feature_drift(
    profile: FeatureProfile, values: Sequence[float | None] | npt.NDArray[np.floating]
) -> FeatureDrift:
    """One feature's live values against its training profile: PSI over the training
    histogram's bins, and KS against the training CDF, linear within each bin."""
    live = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    live = np.sort(live[np.isfinite(live)])
    edges = np.asarray(profile.histogram.edges, dtype=np.float64)
    counts = np.asarray(profile.histogram.counts, dtype=np.float64)
    n = int(live.size)
    if n == 0 or counts.sum() <= 0:
        return FeatureDrift(profile.name, n, 0.0, 0.0, 1.0)
    binned = _binned(edges, live)
    psi = population_stability([0, *counts.tolist(), 0], binned)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)]) / counts.sum()
    training = np.interp(live, edges, cumulative, left=0.0, right=1.0)
    above = np.abs(np.arange(1, n + 1) / n - training).max()
    below = np.abs(np.arange(n) / n - training).max()
    ks = float(max(above, below))
    return FeatureDrift(
        profile.name,
        n,
        psi,
        ks,
        kolmogorov_p_value(ks, n, profile.count),
        tuple(float(e) for e in edges),
        tuple(float(c) for c in counts / counts.sum()),
        tuple(b / n for b in binned),
    )


def class_mix_psi(
    training: Mapping[str, float], training_rows: int, predicted: Counter[str]
) -> float:
    """PSI of the predicted classes' mix against training's class frequencies over its
    `training_rows` (a class training never had counts in a bin of its own)."""
    classes = sorted(set(training) | set(predicted))
    return population_stability(
        [training.get(c, 0.0) * training_rows for c in classes],
        [float(predicted.get(c, 0)) for c in classes],
    )


def repeated_share(inputs: Iterable[Hashable]) -> float:
    """The share of inputs equal to one seen before them in the same sequence."""
    seen: set[Hashable] = set()
    repeats = total = 0
    for item in inputs:
        total += 1
        if item in seen:
            repeats += 1
        else:
            seen.add(item)
    return repeats / total if total else 0.0
