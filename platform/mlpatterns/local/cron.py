"""Five-field cron schedules (minute hour day-of-month month day-of-week, UTC), the
subset Kubernetes CronJobs take: `*`, numbers, `a-b` ranges, `/step` and lists.
The embedded mode runs the batch pattern by the same schedule its CronJob has."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["CronError", "Schedule"]

_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")


class CronError(ValueError):
    pass


def _field(text: str, low: int, high: int, name: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                start, end = (int(x) for x in body.split("-", 1))
            else:
                start = end = int(body)
        except ValueError:
            raise CronError(f"cron {name} field {text!r}: use *, n, a-b, */n or lists") from None
        if step < 1 or not low <= start <= end <= high:
            raise CronError(f"cron {name} field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 and 7 are Sunday
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Schedule:
        fields = text.split()
        if len(fields) != 5:
            raise CronError(f"cron schedule {text!r} needs five fields: minute hour dom month dow")
        parsed = [
            _field(f, lo, hi, n) for f, (lo, hi), n in zip(fields, _BOUNDS, _NAMES, strict=True)
        ]
        weekdays = frozenset(d % 7 for d in parsed[4])
        minutes, hours, days, months, _ = parsed
        return cls(minutes, hours, days, months, weekdays, fields[2] == "*", fields[4] == "*")

    def matches(self, moment: datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7  # cron counts from Sunday
        day_ok = moment.day in self.days
        weekday_ok = weekday in self.weekdays
        # cron's rule: when both day fields are restricted, either one may match
        if self.any_day or self.any_weekday:
            date_ok = day_ok and weekday_ok
        else:
            date_ok = day_ok or weekday_ok
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and date_ok
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first matching minute strictly after `moment` (within five years)."""
        candidate = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(5 * 366 * 24 * 60):
            if self.matches(candidate):
                return candidate
            candidate += timedelta(minutes=1)
        raise CronError("the schedule never matches (e.g. 31 February)")
