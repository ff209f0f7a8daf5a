"""The shadow and A/B reports' arithmetic, against values worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mlpatterns.monitoring import html
from mlpatterns.monitoring.reports import (
    ab_report,
    shadow_report,
    two_proportion_p_value,
    wilson_interval,
)
from mlpatterns.records import quantile

pytestmark = pytest.mark.unit


def prediction(request_id: str, label: str, shadow: bool, latency: float) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "version": "b" if shadow else "a",
        "shadow": shadow,
        "input": [[1.0, 2.0]],
        "output": {"labels": [label]},
        "latency_seconds": latency,
    }


def test_shadow_report_joins_by_request_id() -> None:
    records = [
        prediction("1", "x", False, 0.001),
        prediction("1", "x", True, 0.002),
        prediction("2", "x", False, 0.001),
        prediction("2", "y", True, 0.004),
        prediction("3", "y", False, 0.001),  # no shadow copy
        prediction("4", "y", True, 0.003),  # no primary
    ]
    report = shadow_report("iris", records)
    assert (report.pairs, report.rows, report.agreeing_rows) == (2, 2, 1)
    assert report.agreement == 0.5
    assert report.unmatched_shadow == 1
    assert report.confusion == {("x", "x"): 1, ("x", "y"): 1}
    assert report.mismatches[0].request_id == "2"
    assert report.mismatches[0].inputs == [1.0, 2.0]
    assert report.shadow_latency.p50 == pytest.approx(0.003)
    assert (report.primary_versions, report.shadow_versions) == (("a",), ("b",))
    page = html.shadow_page(report)
    assert page.count('<svg class="plot"') == 2
    assert "<script src" not in page
    assert "http" not in page.replace("http://www.w3.org", "")


def test_statistics_match_known_values() -> None:
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    low, high = wilson_interval(50, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    # 60/100 vs 45/100: z = 2.1232, two-sided p = 0.0337
    assert two_proportion_p_value(60, 100, 45, 100) == pytest.approx(0.0337, abs=1e-4)
    assert two_proportion_p_value(0, 0, 1, 1) == 1.0


def decisions(version: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"request_id": f"{version}{i}", "version": version, "timestamp": "2026-01-01T00:00"}
        for i in range(start, start + count)
    ]


def feedback(version: str, successes: int, failures: int) -> list[dict[str, Any]]:
    outcomes = [True] * successes + [False] * failures
    return [{"request_id": f"{version}{i}", "outcome": o} for i, o in enumerate(outcomes)]


def test_ab_recommends_by_the_test() -> None:
    clear = ab_report(
        "iris",
        decisions("a", 400) + decisions("b", 400),
        feedback("a", 180, 220) + feedback("b", 240, 160),
    )
    assert clear.control == "a"
    assert clear.comparisons[0].p_value < 0.001
    assert clear.recommendation.startswith("roll out b")
    flat = ab_report(
        "iris",
        decisions("a", 200) + decisions("b", 200),
        feedback("a", 100, 100) + feedback("b", 102, 98),
    )
    assert flat.recommendation.startswith("keep a: no version differs")
    early = ab_report("iris", decisions("a", 50) + decisions("b", 5), feedback("b", 5, 0))
    assert early.recommendation.startswith("not enough data yet")
    assert "rate" in html.ab_page(clear) or "Success" in html.ab_page(clear)


def test_ab_outcomes_as_true_labels_and_since() -> None:
    predictions = [prediction("a0", "x", False, 0.001), prediction("a1", "y", False, 0.001)]
    labels = [{"request_id": "a0", "outcome": "x"}, {"request_id": "a1", "outcome": "x"}]
    report = ab_report("iris", decisions("a", 2), labels, predictions)
    assert (report.versions[0].outcomes, report.versions[0].successes) == (2, 1)
    later = ab_report(
        "iris", decisions("a", 2), labels, predictions, since=datetime(2027, 1, 1, tzinfo=UTC)
    )
    assert later.versions == ()
    assert later.unmatched_feedback == 2


@pytest.mark.attack
def test_markup_in_the_data_is_printed_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """`[/]` in a request id crashed `mlpatterns report` (rich read it as markup)."""
    from rich.console import Console

    from mlpatterns.cli import report as cli

    records = [
        prediction("[/]", "[bold]x", False, 0.001),
        prediction("[/]", "[red]y[/red]", True, 0.002),
    ]
    console = Console(record=True, width=200)
    monkeypatch.setattr(cli, "console", console)
    cli.print_shadow(shadow_report("[/]svc", records))
    text = console.export_text()
    for raw in ("[/]svc", "[bold]x", "[red]y[/red]"):
        assert raw in text
