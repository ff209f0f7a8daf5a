"""The shadow circuit breaker, on an injected clock."""

from __future__ import annotations

import pytest

from mlpatterns.routing.breaker import ShadowBreaker

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: ShadowBreaker, version: str, times: int) -> None:
    for _ in range(times):
        assert breaker.allow(version)
        breaker.record(version, succeeded=False)


def test_opens_after_failures_in_a_row_and_a_success_resets_the_count() -> None:
    breaker = ShadowBreaker(failures=3, cooldown=1.0, clock=Clock())
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
    breaker = ShadowBreaker(failures=2, cooldown=1.0, max_cooldown=3.0, clock=clock)
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
    breaker = ShadowBreaker(failures=2, cooldown=1.0, clock=clock)
    for _ in range(5):  # five copies in flight at once
        assert breaker.allow("b")
    for _ in range(5):
        breaker.record("b", succeeded=False)
    clock.now += 1.01
    assert breaker.allow("b")


def test_rejects_settings_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="failures >= 1"):
        ShadowBreaker(failures=0)
