"""Drift against a training profile: known values, and samples drawn from the
training distribution or a shifted one."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlpatterns.drift import (
    class_mix_psi,
    feature_drift,
    kolmogorov_p_value,
    population_stability,
    repeated_share,
)
from mlpatterns.monitoring.monitor import monitor_report, verdict
from mlpatterns.registry.metadata import Profile
from mlpatterns.serving.drift_window import WINDOW_ROWS
from mlpatterns.serving.inputs import Rows
from mlpatterns.serving.metrics import DRIFT_SAMPLE, ServerMetrics
from mlpatterns.training.evaluation import profile

pytestmark = pytest.mark.unit


def training_profile(seed: int = 0) -> Profile:
    rng = np.random.default_rng(seed)
    features = rng.normal(5.0, 1.0, size=(2000, 1))
    labels = np.array(["a"] * 1500 + ["b"] * 500)
    return profile(features, ["x"], labels)


def test_psi_of_known_counts() -> None:
    assert population_stability([50, 50], [50, 50]) == 0.0
    # shares 50.5/101 against 25.5/101 and 75.5/101, after half a count per bin
    assert population_stability([50, 50], [25, 75]) == pytest.approx(0.2686, abs=1e-4)
    assert population_stability([10, 0], [0, 10]) == pytest.approx(
        2 * (10.5 / 11 - 0.5 / 11) * np.log(21), abs=1e-9
    )
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
    assert class_mix_psi(training, 100, Counter({"a": 75, "b": 25})) == pytest.approx(0.0)
    assert class_mix_psi(training, 100, Counter({"a": 25, "b": 75})) > 0.25
    assert class_mix_psi(training, 100, Counter({"a": 70, "b": 25, "c": 5})) > 0.0
    assert repeated_share([(1, 2), (3, 4), (1, 2), (1, 2)]) == 0.5
    assert repeated_share([]) == 0.0


def records(
    version: str, digest: str, rows: list[list[float]], labels: str
) -> list[dict[str, object]]:
    """Prediction records of `rows`, answered with `labels` in turn."""
    return [
        {
            "request_id": f"{version}-{i}",
            "version": version,
            "model": "1.0.0-x",
            "digest": digest,
            "input": [row],
            "output": {"labels": [labels[i % len(labels)]]},
            "timestamp": "2026-12-06T10:00:00+00:00",
        }
        for i, row in enumerate(rows)
    ]


def test_monitor_report_compares_each_version_with_its_models_profile() -> None:
    reference = training_profile()
    rng = np.random.default_rng(3)
    steady = [[float(v)] for v in rng.normal(5.0, 1.0, size=300)]
    shifted = [[float(v)] for v in rng.normal(6.5, 1.0, size=300)]
    logged = (
        records("current", "a" * 64, steady, "aaab")  # the training mix
        + records("candidate", "b" * 64, shifted, "b")
        + records("stranger", "c" * 64, steady[:5] * 2, "a")
    )
    report = monitor_report("svc", logged, {"a" * 64: reference, "b" * 64: reference}.get)
    by_name = {v.version: v for v in report.versions}
    current, candidate, stranger = by_name["current"], by_name["candidate"], by_name["stranger"]
    assert verdict(current.features[0].psi, current.features[0].p_value) == "stable"
    assert verdict(candidate.features[0].psi) == "large shift"
    assert current.class_psi is not None
    assert current.class_psi < 0.1
    assert candidate.class_psi is not None
    assert candidate.class_psi > 0.25  # every answer b against 25% in training
    assert stranger.features == ()
    assert stranger.note == "no training profile for this model in the registry"
    assert stranger.repeated == 0.5  # five inputs, each sent twice
    assert [v.digest for v in report.coverage.versions] == ["b" * 64, "a" * 64, "c" * 64]


DRIFT_METRICS = (
    "mlpatterns_feature",
    "mlpatterns_drift",
    "mlpatterns_class_mix",
    "mlpatterns_repeated",
)


def scraped(metrics: ServerMetrics) -> dict[tuple[str, str], float]:
    """The exposition's drift gauges by (name, feature)."""
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name.startswith(DRIFT_METRICS):
                found[(sample.name, sample.labels.get("feature", ""))] = sample.value
    return found


def test_the_server_measures_drift_of_its_recent_rows_when_scraped() -> None:
    reference = training_profile()
    metrics = ServerMetrics("svc", "v1", reference)
    rng = np.random.default_rng(4)
    for value in rng.normal(5.0, 1.0, size=3000 * DRIFT_SAMPLE):
        metrics.watch(Rows([float(value)], 1), ["a" if rng.random() < 0.75 else "b"])
    steady = scraped(metrics)
    assert steady[("mlpatterns_drift_window_rows", "")] == WINDOW_ROWS  # bounded
    assert steady[("mlpatterns_feature_psi", "x")] < 0.1
    assert steady[("mlpatterns_feature_ks_p_value", "x")] > 0.01
    assert steady[("mlpatterns_class_mix_psi", "")] < 0.1
    for value in rng.normal(7.0, 1.0, size=WINDOW_ROWS * DRIFT_SAMPLE):  # a shift fills it
        metrics.watch(Rows([float(value)], 1), ["b"])
    shifted = scraped(metrics)
    assert shifted[("mlpatterns_feature_psi", "x")] > 0.25
    assert shifted[("mlpatterns_feature_ks_p_value", "x")] < 1e-6
    assert shifted[("mlpatterns_class_mix_psi", "")] > 0.25
    for _ in range(DRIFT_SAMPLE):
        metrics.watch(Rows([5.0, 5.0], 1), ["a", "a"])
    assert scraped(metrics)[("mlpatterns_repeated_inputs_ratio", "")] > 0


def test_a_model_without_a_profile_exports_no_drift() -> None:
    metrics = ServerMetrics("svc", "v1")
    metrics.watch(Rows([1.0], 1), ["a"])
    assert scraped(metrics) == {}
