"""Drift against a training profile: known values, and samples drawn from the
training distribution or a shifted one."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mlpatterns.monitoring.drift import (
    class_mix_psi,
    feature_drift,
    kolmogorov_p_value,
    population_stability,
    repeated_share,
)
from mlpatterns.registry.metadata import Profile
from mlpatterns.training.evaluation import profile

pytestmark = pytest.mark.unit


def training_profile(seed: int = 0) -> Profile:
    rng = np.random.default_rng(seed)
    features = rng.normal(5.0, 1.0, size=(2000, 1))
    labels = np.array(["a"] * 1500 + ["b"] * 500)
    return profile(features, ["x"], labels)


def test_psi_of_known_shares() -> None:
    assert population_stability([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert population_stability([50, 50], [25, 75]) == pytest.approx(0.2747, abs=1e-4)
    with pytest.raises(ValueError, match="2 expected bins against 3"):
        population_stability([1, 1], [1, 1, 1])


def test_kolmogorov_p_value_matches_the_tables() -> None:
    # the 5% critical value of the two-sample test is about 1.358 / sqrt(n m / (n + m))
    n = m = 10_000
    critical = 1.358 / (np.sqrt(n * m / (n + m)) + 0.12 + 0.11 / np.sqrt(n * m / (n + m)))
    assert kolmogorov_p_value(float(critical), n, m) == pytest.approx(0.05, abs=0.002)
    assert kolmogorov_p_value(0.0, n, m) == 1.0
    assert kolmogorov_p_value(0.5, 0, m) == 1.0


def test_live_values_from_the_training_distribution_do_not_drift() -> None:
    reference = training_profile().features[0]
    live = np.random.default_rng(1).normal(5.0, 1.0, size=500)
    drift = feature_drift(reference, live.tolist())
    assert drift.count == 500
    assert drift.psi < 0.1
    assert drift.p_value > 0.01


def test_a_shifted_feature_drifts_by_both_measures() -> None:
    reference = training_profile().features[0]
    live = np.random.default_rng(2).normal(6.0, 1.0, size=500)  # one standard deviation up
    drift = feature_drift(reference, [*live.tolist(), None, float("nan")])
    assert drift.count == 500  # missing values are left out
    assert drift.psi > 0.25
    assert drift.ks > 0.3
    assert drift.p_value < 1e-6


def test_values_training_never_saw_count_in_open_bins() -> None:
    reference = training_profile().features[0]
    far = feature_drift(reference, [100.0] * 50)
    assert far.psi > 5
    assert far.ks == pytest.approx(1.0)


def test_class_mix_and_repeated_inputs() -> None:
    training = {"a": 0.75, "b": 0.25}
    assert class_mix_psi(training, Counter({"a": 75, "b": 25})) == pytest.approx(0.0)
    assert class_mix_psi(training, Counter({"a": 25, "b": 75})) > 0.25
    assert class_mix_psi(training, Counter({"a": 70, "b": 25, "c": 5})) > 0.0
    assert repeated_share([(1, 2), (3, 4), (1, 2), (1, 2)]) == 0.5
    assert repeated_share([]) == 0.0
