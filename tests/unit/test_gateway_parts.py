"""The gateway's pure parts: thresholds on binary answers, feedback bodies, and the
answer metrics' exposition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlpatterns.meters import LATENCY_BUCKETS
from mlpatterns.routing import thresholds
from mlpatterns.routing.gateway_app import FeedbackError, parse_feedback
from mlpatterns.routing.gateway_metrics import AnswerMetrics
from mlpatterns.routing.recent import RecentVersions
from tests.support.metrics import sample

pytestmark = pytest.mark.unit

BINARY = {"probabilities": [[0.3, 0.7], [0.05, 0.95]], "classes": ["benign", "malignant"]}


def test_threshold_moves_the_cut_off_of_binary_models() -> None:
    assert thresholds.labels_at(BINARY, 0.5) == ["malignant", "malignant"]
    assert thresholds.labels_at(BINARY, 0.9) == ["benign", "malignant"]
    body, applied = thresholds.rewrite("/predict/label", BINARY, 0.9)
    assert (body, applied) == ({"labels": ["benign", "malignant"]}, True)
    body, applied = thresholds.rewrite("/predict", BINARY, 0.9)
    assert body["labels"] == ["benign", "malignant"]
    assert body["threshold"] == 0.9
    assert thresholds.upstream_path("/predict/label") == "/predict"


def test_threshold_leaves_multiclass_answers_to_argmax() -> None:
    three = {"probabilities": [[0.2, 0.5, 0.3]], "classes": ["a", "b", "c"]}
    assert thresholds.labels_at(three, 0.9) is None
    assert thresholds.rewrite("/predict/label", three, 0.9) == ({"labels": ["b"]}, False)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"request_id": "r1", "outcome": true}', ("r1", True)),
        (b'{"request_id": "r1", "outcome": 1}', ("r1", 1.0)),
        (b'{"request_id": "r1", "outcome": "setosa"}', ("r1", "setosa")),
    ],
)
def test_feedback_bodies(body: bytes, expected: tuple[str, object]) -> None:
    assert parse_feedback(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "not JSON"),
        (b"[1]", "send an object"),
        (b'{"outcome": true}', "request_id must be"),
        (b'{"request_id": "r", "outcome": null}', "outcome must be"),
        (b'{"request_id": "r", "outcome": [1]}', "outcome must be"),
        (b"x" * 20000, "over"),
    ],
)
def test_bad_feedback_says_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(FeedbackError, match=message):
        parse_feedback(body)


ON_AND_BETWEEN_BOUNDS = st.one_of(
    st.sampled_from(LATENCY_BUCKETS), st.floats(min_value=0, max_value=20, allow_nan=False)
)


@given(st.lists(ON_AND_BETWEEN_BOUNDS, max_size=50))
def test_answer_metrics_expose_what_prometheus_histograms_would(values: list[float]) -> None:
    own = CollectorRegistry()
    answers = AnswerMetrics()
    own.register(answers)
    theirs = CollectorRegistry()
    histogram = Histogram(
        "mlpatterns_gateway_request_duration_seconds",
        "Time to answer, upstream included.",
        ("service", "version"),
        registry=theirs,
        buckets=LATENCY_BUCKETS,
    )
    for value in values:
        answers.answered("iris", "default", "a", 200, value, value / 2)
        histogram.labels("iris", "a").observe(value)

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return [
            line
            for line in text.splitlines()
            if line.startswith("mlpatterns_gateway_request_duration_seconds_")
            and "_created" not in line
        ]

    assert lines(own) == lines(theirs)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(own).decode())}
    count = sample(families, "mlpatterns_gateway_requests_total", status="200")
    assert count == len(values)


def test_recent_versions_keep_the_last_capacity_ids_and_at_most_twice_as_many() -> None:
    recent = RecentVersions(capacity=10)
    for number in range(1, 101):
        recent.add(f"r{number}", f"v{number}")
        assert len(recent) <= 20
        assert all(recent.get(f"r{n}") == f"v{n}" for n in range(max(1, number - 9), number + 1))
    assert recent.get("r1") is None
    assert recent.get("never") is None
