"""The loading test's pure parts: vegeta's target and arguments, its report read,
each threshold judged, and the spec's checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mlpatterns.api.loadtest import LoadTest, LoadThresholds
from mlpatterns.loadtest import attack_argv, parse_report, target_text, verdicts

pytestmark = pytest.mark.unit

REPORT = {
    "latencies": {"50th": 650_000, "90th": 840_000, "99th": 1_420_000, "max": 1_790_000},
    "requests": 100,
    "rate": 50.49,
    "throughput": 49.5,
    "success": 0.98,
    "status_codes": {"200": 98, "503": 2},
    "errors": ["503 Service Unavailable"],
}


def load_test(**fields: Any) -> LoadTest:
    return LoadTest.model_validate(
        {"body": {"data": [[1, 2]]}, "thresholds": {"p99Ms": 10}, **fields}
    )


def test_an_open_load_is_a_rate_and_a_closed_one_is_workers() -> None:
    open_load = attack_argv("vegeta", load_test(rate=50, durationSeconds=3), Path("t"))
    assert "-rate=50/s" in open_load
    assert "-duration=3s" in open_load
    closed = attack_argv("vegeta", load_test(concurrency=4), Path("t"))
    assert {"-rate=0", "-workers=4", "-max-workers=4"} <= set(closed)


def test_the_target_posts_the_body_file_to_the_path() -> None:
    text = target_text(
        "http://127.0.0.1:8080/", load_test(rate=1, path="/v2/models/m/infer"), Path("/b")
    )
    assert text == (
        "POST http://127.0.0.1:8080/v2/models/m/infer\nContent-Type: application/json\n@/b\n"
    )


def test_the_report_is_read_in_milliseconds() -> None:
    result = parse_report(json.dumps(REPORT))
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (0.65, 1.42, 1.79)
    assert result.status_codes == {"200": 98, "503": 2}
    assert result.success_ratio == 0.98


def test_each_threshold_set_is_judged_and_only_those() -> None:
    result = parse_report(json.dumps(REPORT))
    thresholds = LoadThresholds.model_validate(
        {"p99Ms": 1, "minSuccessRatio": 0.99, "minThroughput": 40}
    )
    judged = {v.measure: v.passed for v in verdicts(result, thresholds)}
    assert judged == {"p99": False, "success ratio": False, "throughput": True}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate": 5, "concurrency": 2}, "exactly one of rate"),
        ({}, "exactly one of rate"),
        ({"rate": 5, "thresholds": {}}, "at least one of p50Ms"),
        ({"rate": 20_000}, "less than or equal to 10000"),
        ({"rate": 5, "durationSeconds": 3600}, "less than or equal to 600"),
        ({"rate": 5, "path": "predict"}, "should match pattern"),
    ],
)
def test_loads_that_would_not_be_bounded_or_judged_are_refused(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        load_test(**fields)
