"""Where one request goes: the route table executed for a request's headers, path and
time. Pure: the clock and the random draws are arguments, so tests fix them.

- Rules are tried in order; the first whose headers, path and time window all match
  wins; the default route is last and matches everything.
- Within a route, the version is drawn by weight. With a sticky header the draw is a
  consistent hash of its value instead, so one user always lands on one version
  while weights stay, and moving weight between versions moves only the users in
  the share that moved.
- The shadow is sampled separately, at its percentage; a table with a mirror path
  (a follow-up's: the simple API) mirrors only requests to that path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from mlpatterns.api.modelservice import StringMatch, TimeWindow
from mlpatterns.api.regex import fullmatch
from mlpatterns.routing.table import Route, RouteTable, Weighted

__all__ = [
    "Decision",
    "decide",
    "in_window",
    "pick",
    "route_matches",
    "sticky_point",
    "string_matches",
]


class Decision(NamedTuple):  # a tuple: made for every request, cheaply
    route: str
    version: str
    shadow: str | None  # also send a copy here; its answer is never returned


def string_matches(match: StringMatch, value: str | None) -> bool:
    if value is None:
        return False
    if match.exact is not None:
        return value == match.exact
    if match.prefix is not None:
        return value.startswith(match.prefix)
    assert match.regex is not None
    return fullmatch(match.regex, value)  # RE2: linear in the value, as in Envoy


def in_window(window: TimeWindow, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(window.timezone))
    minute = local.weekday() * 1440 + local.hour * 60 + local.minute  # Monday is 0, as in DAYS
    return any(start <= minute < end for start, end in window.minutes())


def route_matches(route: Route, headers: Mapping[str, str], path: str, now: datetime) -> bool:
    for name, match in route.headers:
        if not string_matches(match, headers.get(name)):
            return False
    if route.path is not None and not string_matches(route.path, path):
        return False
    return route.window is None or in_window(route.window, now)


def sticky_point(value: str) -> float:
    """A user's fixed place in [0, 1): where their sticky value hashes to."""
    digest = hashlib.sha256(value.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(destinations: tuple[Weighted, ...], point: float) -> str:
    """The version whose share of [0, 100) holds `point` (in [0, 1)), in table order."""
    position = point * sum([d.weight for d in destinations])
    for destination in destinations:
        if position < destination.weight:
            return destination.version
        position -= destination.weight
    return destinations[-1].version


def decide(
    table: RouteTable,
    headers: Mapping[str, str],
    path: str,
    now: datetime,
    draw: float,
    shadow_draw: float,
) -> Decision:
    """`headers` with lowercase names; `draw` and `shadow_draw` uniform in [0, 1)."""
    for route in table.routes:  # the default, last, matches everything
        if route_matches(route, headers, path, now):
            break
    destinations = route.destinations
    if len(destinations) == 1:
        version = destinations[0].version
    else:
        sticky = headers.get(table.sticky_header) if table.sticky_header else None
        version = pick(destinations, sticky_point(sticky) if sticky else draw)
    shadow = None
    if table.mirror is not None and (table.mirror_path is None or path == table.mirror_path):
        mirror_version, percent = table.mirror
        if mirror_version != version and shadow_draw * 100 < percent:
            shadow = mirror_version
    return Decision(route.name, version, shadow)
