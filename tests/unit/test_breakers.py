"""The circuit breakers (the shadow's, and the primary path's per version), on an injected clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlpatterns.api.breaker import CircuitBreaker
from mlpatterns.routing.breaker import Breaker, CircuitBreakers, Refusal
from mlpatterns.routing.table import Route, RouteTable, VersionPolicy, Weighted

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: Breaker, version: str, times: int) -> None:
    for _ in range(times):
        assert breaker.allow(version)
        breaker.record(version, succeeded=False)


def test_opens_after_failures_in_a_row_and_a_success_resets_the_count() -> None:
    breaker = Breaker(failures=3, cooldown=1.0, clock=Clock())
    fail(breaker, "b", 2)
    breaker.record("b", succeeded=True)
    fail(breaker, "b", 2)
    assert breaker.allow("b")
    assert not breaker.is_open("b")
    breaker.record("b", succeeded=False)
    assert breaker.is_open("b")
    assert not breaker.allow("b")
    assert breaker.allow("a")  # per version


def test_one_probe_after_the_cooldown_and_a_failed_probe_doubles_it() -> None:
    clock = Clock()
    breaker = Breaker(failures=2, cooldown=1.0, max_cooldown=3.0, clock=clock)
    fail(breaker, "b", 2)
    clock.now += 0.99
    assert not breaker.allow("b")
    clock.now += 0.02
    assert breaker.allow("b")  # the probe
    assert not breaker.allow("b")  # only one at a time
    breaker.record("b", succeeded=False)
    clock.now += 1.5
    assert not breaker.allow("b")  # cooldown now 2 s
    clock.now += 0.6
    assert breaker.allow("b")
    breaker.record("b", succeeded=False)
    clock.now += 3.01  # doubled to 4 s, capped at 3
    assert breaker.allow("b")
    breaker.record("b", succeeded=True)
    assert not breaker.is_open("b")
    assert breaker.allow("b")
    assert breaker.allow("b")


def test_late_failures_of_copies_sent_before_it_opened_do_not_extend_it() -> None:
    clock = Clock()
    breaker = Breaker(failures=2, cooldown=1.0, clock=clock)
    for _ in range(5):  # five copies in flight at once
        assert breaker.allow("b")
    for _ in range(5):
        breaker.record("b", succeeded=False)
    clock.now += 1.01
    assert breaker.allow("b")


def test_rejects_settings_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="failures >= 1"):
        Breaker(failures=0)


def spec(**fields: object) -> CircuitBreaker:
    return CircuitBreaker.model_validate(fields)


def table(**breakers: CircuitBreaker | None) -> RouteTable:
    """A route table with these versions (all routed) and breakers."""
    everyone = tuple(Weighted(name, 1) for name in breakers)
    return RouteTable(
        service="s",
        routes=(Route("default", (), None, None, everyone),),
        mirror=None,
        sticky_header=None,
        policies={name: VersionPolicy(None, None, None, b) for name, b in breakers.items()},
        versions=tuple(breakers),
    )


def test_requests_beyond_max_concurrent_are_refused_until_one_ends() -> None:
    breakers, limit = CircuitBreakers(clock=Clock()), spec(maxConcurrent=2)
    for _ in range(2):
        assert breakers.refusal("a", limit) is None
        breakers.started("a")
    assert breakers.refusal("a", limit) == Refusal("full", 1)
    breakers.finished("a", limit, 200)
    assert breakers.refusal("a", limit) is None


def test_failures_in_a_row_eject_the_version_with_a_retry_after() -> None:
    clock = Clock()
    breakers, ejecting = CircuitBreakers(clock=clock), spec(consecutiveErrors=2, ejectionSeconds=10)
    for status in (500, 503):
        assert breakers.refusal("a", ejecting) is None
        breakers.started("a")
        breakers.finished("a", ejecting, status)
    assert breakers.refusal("a", ejecting) == Refusal("ejected", 10)
    clock.now += 7.5
    assert breakers.refusal("a", ejecting) == Refusal("ejected", 3)  # rounded up
    clock.now += 2.5
    assert breakers.refusal("a", ejecting) is None  # the probe
    assert breakers.refusal("a", ejecting) is not None  # only one at a time
    breakers.started("a")
    breakers.finished("a", ejecting, 200)
    assert breakers.refusal("a", ejecting) is None
    assert breakers.in_flight("a") == 0


def test_a_cancelled_request_frees_its_place_without_counting_as_a_failure() -> None:
    breakers, both = CircuitBreakers(clock=Clock()), spec(maxConcurrent=1, consecutiveErrors=1)
    breakers.started("a")
    breakers.finished("a", both, None)
    assert breakers.refusal("a", both) is None


def test_a_refused_request_goes_to_the_fallback_unless_it_refuses_too() -> None:
    breakers = CircuitBreakers(clock=Clock())
    full, guarded = spec(maxConcurrent=1, fallback="b"), spec(maxConcurrent=1)
    known = table(a=full, b=guarded)
    assert breakers.admit("a", full, known) == ("a", None)
    breakers.started("a")
    assert breakers.admit("a", full, known) == ("b", Refusal("full", 1))
    breakers.started("b")
    assert breakers.admit("a", full, known) == (None, Refusal("full", 1))
    assert breakers.admit("a", spec(maxConcurrent=1), known) == (None, Refusal("full", 1))


def test_new_numbers_from_a_reload_start_a_new_count() -> None:
    breakers = CircuitBreakers(clock=Clock())
    three, two = spec(consecutiveErrors=3), spec(consecutiveErrors=2)
    for _ in range(2):
        breakers.started("a")
        breakers.finished("a", three, 500)
    assert breakers.refusal("a", three) is None
    assert breakers.refusal("a", two) is None  # two failures were counted under other numbers


def test_a_switched_off_fallback_takes_no_refused_requests() -> None:
    breakers, full = CircuitBreakers(clock=Clock()), spec(maxConcurrent=1, fallback="b")
    breakers.started("a")
    assert breakers.admit("a", full, table(a=full, b=None))[0] == "b"
    switched_off = replace(table(a=full, b=None), switched_off=frozenset({"b"}))
    assert breakers.admit("a", full, switched_off) == (None, Refusal("full", 1))
