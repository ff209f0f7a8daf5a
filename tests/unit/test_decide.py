"""Routing decisions for one request: rules, time windows, weights, stickiness, shadow."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from mlpatterns.routing.decide import decide
from mlpatterns.routing.table import compile_table
from tests.unit.test_routing import service

pytestmark = pytest.mark.unit
NOON_MONDAY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def draws(seed: int = 7) -> Any:
    rng = random.Random(seed)
    return lambda: rng.random()


def test_split_shares_are_within_tolerance_of_the_weights() -> None:
    table = compile_table(service(lambda d: d["spec"]["traffic"].pop("sticky")))
    draw = draws()
    counts = Counter(
        decide(table, {}, "/predict", NOON_MONDAY, draw(), draw()).version for _ in range(20_000)
    )
    # binomial: 20,000 draws at 10% has a standard deviation of 0.21%; allow 5 of them
    assert abs(counts["rf"] / 20_000 - 0.10) < 0.011


def test_sticky_users_keep_their_version_and_a_weight_move_moves_the_fewest() -> None:
    table = compile_table(service())
    users = [f"user-{i}" for i in range(5_000)]
    first = {u: decide(table, {"x-user-id": u}, "/", NOON_MONDAY, 0.99, 1.0).version for u in users}
    again = {u: decide(table, {"x-user-id": u}, "/", NOON_MONDAY, 0.01, 1.0).version for u in users}
    assert first == again  # the random draw plays no part for a sticky user
    assert abs(Counter(first.values())["rf"] / len(users) - 0.10) < 0.02
    moved = service(
        lambda d: d["spec"]["traffic"].update(
            split=[{"version": "svc", "weight": 80}, {"version": "rf", "weight": 20}]
        )
    )
    after = {
        u: decide(compile_table(moved), {"x-user-id": u}, "/", NOON_MONDAY, 0.5, 1.0).version
        for u in users
    }
    changed = [u for u in users if first[u] != after[u]]
    assert all(first[u] == "svc" and after[u] == "rf" for u in changed)  # only svc -> rf moves
    assert abs(len(changed) / len(users) - 0.10) < 0.02  # about the 10% that moved


def test_weight_zero_gets_no_traffic() -> None:
    table = compile_table(
        service(
            lambda d: d["spec"]["traffic"].update(
                split=[{"version": "svc", "weight": 100}, {"version": "rf", "weight": 0}]
            )
        )
    )
    draw = draws()
    assert {
        decide(table, {"x-user-id": str(i)}, "/", NOON_MONDAY, draw(), draw()).version
        for i in range(2_000)
    } == {"svc"}


def test_header_rule_wins_and_the_rest_take_the_default() -> None:
    table = compile_table(service(lambda d: d["spec"]["traffic"].pop("sticky")))
    assert decide(table, {"x-region": "eu"}, "/", NOON_MONDAY, 0.0, 1.0).route == "rule-0"
    assert decide(table, {"x-region": "eu"}, "/", NOON_MONDAY, 0.0, 1.0).version == "rf"
    assert decide(table, {"x-region": "us"}, "/", NOON_MONDAY, 0.0, 1.0).route == "default"
    assert decide(table, {}, "/", NOON_MONDAY, 0.0, 1.0).version == "svc"


def test_time_window_rules_follow_the_injected_clock_in_their_timezone() -> None:
    def business_hours(d: dict[str, Any]) -> None:
        d["spec"]["traffic"].pop("sticky")
        d["spec"]["traffic"]["rules"] = [
            {
                "match": {
                    "time": {
                        "start": "09:00",
                        "end": "17:00",
                        "timezone": "Asia/Tokyo",
                        "days": ["mon", "tue", "wed", "thu", "fri"],
                    }
                },
                "route": [{"version": "rf"}],
            }
        ]

    table = compile_table(service(business_hours))
    tokyo_10am_monday = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    tokyo_8pm_monday = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    tokyo_10am_saturday = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    assert decide(table, {}, "/", tokyo_10am_monday, 0.0, 1.0).version == "rf"
    assert decide(table, {}, "/", tokyo_8pm_monday, 0.0, 1.0).route == "default"
    assert decide(table, {}, "/", tokyo_10am_saturday, 0.0, 1.0).route == "default"


def test_shadow_sampled_at_its_percentage_and_never_onto_itself() -> None:
    half = compile_table(
        service(
            lambda d: (
                d["spec"]["traffic"].pop("sticky"),
                d["spec"]["traffic"]["shadow"].update(percent=50),
            )
        )
    )
    draw = draws(3)
    shadowed = sum(
        decide(half, {}, "/", NOON_MONDAY, 0.0, draw()).shadow == "rf" for _ in range(10_000)
    )
    assert abs(shadowed / 10_000 - 0.5) < 0.03
    # a request already answered by rf is not copied to rf again
    assert decide(half, {"x-region": "eu"}, "/", NOON_MONDAY, 0.0, 0.0).shadow is None


def test_path_rules() -> None:
    table = compile_table(
        service(
            lambda d: (
                d["spec"]["traffic"].pop("sticky"),
                d["spec"]["traffic"]["rules"][0].update(match={"path": {"regex": "/v2/.*/infer"}}),
            )
        )
    )
    assert decide(table, {}, "/v2/models/iris/infer", NOON_MONDAY, 0.0, 1.0).version == "rf"
    assert decide(table, {}, "/predict", NOON_MONDAY, 0.0, 1.0).version == "svc"


@pytest.mark.attack
@pytest.mark.timeout(20)
def test_a_backtracking_regex_cannot_stall_decisions() -> None:
    """`(a|aa)+` against 38 a's and a b took Python's re 4.5 s (it doubles per
    character); RE2 is linear, so a 100,000-character header decides at once."""
    table = compile_table(
        service(
            lambda d: d["spec"]["traffic"]["rules"][0].update(
                match={"headers": {"x-region": {"regex": "(a|aa)+"}}}
            )
        )
    )
    for hostile in ("a" * 38 + "b", "a" * 100_000 + "b"):
        assert decide(table, {"x-region": hostile}, "/", NOON_MONDAY, 0.0, 1.0).route == "default"
    assert decide(table, {"x-region": "aaa"}, "/", NOON_MONDAY, 0.0, 1.0).route == "rule-0"


def test_a_table_says_what_its_decisions_read_and_reads_nothing_else() -> None:
    """The gateway makes a request's headers a mapping, and reads the clock, only
    when its table says decisions look at them."""
    example = compile_table(service())  # a header rule and a sticky header
    assert (example.reads_headers, example.reads_clock) == (True, False)
    plain = compile_table(
        service(lambda d: (d["spec"]["traffic"].pop("sticky"), d["spec"]["traffic"].pop("rules")))
    )
    assert (plain.reads_headers, plain.reads_clock) == (False, False)
    for point in (0.0, 0.3, 0.95):
        with_all = decide(plain, {"x-region": "eu", "x-user-id": "u"}, "/", NOON_MONDAY, point, 0.5)
        assert decide(plain, {}, "/", datetime.fromtimestamp(0, UTC), point, 0.5) == with_all
    windowed = compile_table(
        service(
            lambda d: d["spec"]["traffic"]["rules"][0]["match"].update(
                time={"start": "09:00", "end": "17:00", "timezone": "UTC"}
            )
        )
    )
    assert windowed.reads_clock
