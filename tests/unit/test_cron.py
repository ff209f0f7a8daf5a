from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlpatterns.local.cron import CronError, Schedule

pytestmark = pytest.mark.unit


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("* * * * *", "2026-11-29T10:00:30", "2026-11-29T10:01:00"),
        ("*/15 * * * *", "2026-11-29T10:01:00", "2026-11-29T10:15:00"),
        ("0 3 * * *", "2026-11-29T03:00:00", "2026-11-30T03:00:00"),
        ("30 9 * * 1-5", "2026-11-28T12:00:00", "2026-11-30T09:30:00"),  # Sat -> Mon
        ("0 0 1 * *", "2026-11-29T00:00:00", "2026-12-01T00:00:00"),
        ("0 0 * * 0", "2026-11-24T00:00:00", "2026-11-29T00:00:00"),  # Sunday as 0
        ("0 0 * * 7", "2026-11-24T00:00:00", "2026-11-29T00:00:00"),  # and as 7
        ("0 12 13 * 5", "2026-11-01T00:00:00", "2026-11-06T12:00:00"),  # dom OR dow
        ("5,10 1 * * *", "2026-11-29T01:05:00", "2026-11-29T01:10:00"),
    ],
)
def test_next_run(schedule: str, after: str, expected: str) -> None:
    assert Schedule.parse(schedule).next_after(at(after)) == at(expected)


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "*/0 * * * *", "a * * * *"])
def test_bad_schedules_say_why(bad: str) -> None:
    with pytest.raises(CronError):
        Schedule.parse(bad)
