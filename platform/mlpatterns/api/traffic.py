"""A ModelService's traffic policy (`spec.traffic`): rules matched first (headers,
path, time window; condition-based serving), the default route's weighted split
(online A/B), a sticky header and a shadow (shadow A/B), and the checks that span
their fields (weights that add up, time windows that cannot both apply)."""

from __future__ import annotations

import re
from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from mlpatterns.api.base import Strict
from mlpatterns.api.regex import compile_regex

__all__ = [
    "DAYS",
    "HEADER_NAME",
    "Day",
    "Destination",
    "Match",
    "Rule",
    "Shadow",
    "Sticky",
    "StringMatch",
    "TimeWindow",
    "Traffic",
    "check_time_windows",
    "check_weights",
]

HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class StringMatch(Strict):
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StringMatch:
        given = [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a match takes exactly one of exact, prefix or regex; got {given or 'none'}"
            )
        if self.regex is not None:
            compile_regex(self.regex)  # RE2, as Istio: a RegexError says why not
        return self


class TimeWindow(Strict):
    """Active from `start` to `end`, local time in `timezone`; an `end` before `start`
    wraps past midnight."""

    start: time
    end: time
    timezone: str = "UTC"
    days: list[Day] = Field(default_factory=lambda: list(DAYS))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin"
            ) from None
        return value

    def minutes(self) -> list[tuple[int, int]]:
        """The window as half-open minute ranges of the week, [from, to)."""
        start, end = self.start.hour * 60 + self.start.minute, self.end.hour * 60 + self.end.minute
        ranges = []
        for day in self.days:
            base = DAYS.index(day) * 1440
            if start < end:
                ranges.append((base + start, base + end))
            else:  # wraps midnight into the next day
                ranges.append((base + start, base + 1440))
                ranges.append(((base + 1440) % (7 * 1440), (base + 1440) % (7 * 1440) + end))
        return ranges

    def overlaps(self, other: TimeWindow) -> bool:
        if self.timezone != other.timezone:
            return True  # a different clock: assume they can overlap, so the user must decide
        return any(a < d and c < b for a, b in self.minutes() for c, d in other.minutes())


class Match(Strict):
    headers: dict[str, StringMatch] = Field(default_factory=dict)
    path: StringMatch | None = None
    time: TimeWindow | None = None

    @field_validator("headers")
    @classmethod
    def _lowercase(cls, value: dict[str, StringMatch]) -> dict[str, StringMatch]:
        for name in value:
            if not HEADER_NAME.match(name):
                raise ValueError(
                    f"header name {name!r} must be lowercase (HTTP/2 and Istio match lowercase "
                    f"names): write {name.lower()!r}"
                )
        return value

    def same_conditions(self, other: Match) -> bool:
        return self.headers == other.headers and self.path == other.path


class Destination(Strict):
    version: str
    weight: int = Field(default=100, ge=0, le=100)


class Rule(Strict):
    match: Match
    route: list[Destination] = Field(min_length=1)


class Sticky(Strict):
    header: str = Field(
        description="Requests with the same value of this header go to the same version."
    )

    @field_validator("header")
    @classmethod
    def _lowercase(cls, value: str) -> str:
        if not HEADER_NAME.match(value):
            raise ValueError(f"sticky header {value!r} must be lowercase: write {value.lower()!r}")
        return value


class Shadow(Strict):
    version: str
    percent: float = Field(default=100, gt=0, le=100)


class Traffic(Strict):
    rules: list[Rule] = Field(
        default_factory=list, description="First match wins (condition-based serving)."
    )
    split: list[Destination] = Field(
        default_factory=list, description="Default route, weighted (online A/B)."
    )
    sticky: Sticky | None = None
    shadow: Shadow | None = Field(default=None, description="Shadow A/B: copied, never answered.")


def check_weights(where: str, destinations: list[Destination]) -> None:
    names = [d.version for d in destinations]
    if len(set(names)) != len(names):
        raise ValueError(f"{where} lists a version twice: {names}")
    total = sum(d.weight for d in destinations)
    if total == 0:
        raise ValueError(
            f"{where}: all weights are 0, so no version would answer; give one a weight"
        )
    if len(destinations) > 1 and total != 100:
        raise ValueError(f"{where}: weights add up to {total}; they must add up to 100")


def check_time_windows(rules: list[Rule]) -> None:
    for i, first in enumerate(rules):
        for j in range(i + 1, len(rules)):
            second = rules[j]
            if (
                first.match.time is not None
                and second.match.time is not None
                and first.match.same_conditions(second.match)
                and first.match.time.overlaps(second.match.time)
            ):
                raise ValueError(
                    f"traffic.rules[{i}] and traffic.rules[{j}] match the same requests in "
                    "overlapping time windows, so the later rule would never apply in the overlap; "
                    "make the windows disjoint"
                )
