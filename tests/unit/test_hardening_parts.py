"""The pure parts of hardening: request ids, upstream URLs, forwarded headers, who may
reload, feedback once per id, masked URLs, backoff, a worker whose threads died."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpatterns.routing.gateway_app import FeedbackSeen, may_reload
from mlpatterns.routing.messages import (
    answered_headers,
    forwarded_headers,
    parse_upstreams,
    request_head,
    upstream_target,
)
from mlpatterns.routing.upstream import Origin
from mlpatterns.serving.worker import Backoff, Worker
from mlpatterns.settings import load_settings, masked_url
from mlpatterns.web import is_valid_request_id, request_id

pytestmark = [pytest.mark.unit, pytest.mark.attack]


@pytest.mark.parametrize("value", ["a", "user-1:a.b_c", "x" * 128])
def test_request_ids_that_are_kept(value: str) -> None:
    assert request_id(value) == value


@pytest.mark.parametrize("value", [None, "", "x" * 129, "a b", "é", "a\nb", "<x>", "a/b"])
def test_request_ids_that_are_replaced(value: str | None) -> None:
    replaced = request_id(value)
    assert replaced != value
    assert is_valid_request_id(replaced)


@given(st.text(max_size=300))
def test_any_request_id_comes_out_short_and_inert(value: str) -> None:
    assert is_valid_request_id(request_id(value))


@given(
    path=st.from_regex(r"/[A-Za-z0-9%._~!$&'()*+,;=:@/-]{0,60}", fullmatch=True),
    query=st.from_regex(r"[A-Za-z0-9%=&._~-]{0,30}", fullmatch=True),
)
def test_the_upstream_keeps_host_and_port_whatever_the_path(path: str, query: str) -> None:
    origin = Origin.of(urlsplit("http://10.1.2.3:8080/prefix/"))
    assert (origin.host, origin.port, origin.tls) == ("10.1.2.3", 8080, False)
    target = upstream_target(origin.prefix, path.encode(), query.encode())
    head = request_head("POST", target, origin.host_header, [], 0)
    line, host = head.split(b"\r\n")[:2]
    assert host == b"host: 10.1.2.3:8080"
    assert line == b"POST /prefix" + path.encode() + (b"?" + query.encode() if query else b"") + (
        b" HTTP/1.1"
    )


def test_origins_of_ipv6_and_default_ports() -> None:
    assert Origin.of(urlsplit("http://[::1]:9000")).host_header == b"[::1]:9000"
    assert Origin.of(urlsplit("https://svc")).port == 443
    assert Origin.of(urlsplit("http://svc")).url == "http://svc:80"


def test_upstreams_must_be_plain_http_origins() -> None:
    assert parse_upstreams({"a": "http://svc:8080"})["a"].port == 8080
    for bad in (
        "ftp://svc",
        "http://user:pw@svc:1",
        "svc:8080",
        "http://svc:1/?q=1",
        "http://svc:x",
    ):
        with pytest.raises(ValueError, match="must be http"):
            parse_upstreams({"a": bad})


def test_hop_by_hop_and_connection_named_headers_are_dropped() -> None:
    raw = [
        (b"connection", b"X-Secret, keep-alive"),
        (b"x-secret", b"1"),
        (b"proxy-authorization", b"Basic eA=="),
        (b"trailer", b"x-t"),
        (b"host", b"svc"),
        (b"x-kept", b"yes"),
    ]
    assert forwarded_headers(raw) == [(b"x-kept", b"yes")]
    answer = [(b"connection", b"X-Internal"), (b"x-internal", b"1"), (b"date", b"now")]
    assert answered_headers([*answer, (b"x-kept", b"yes")]) == [(b"x-kept", b"yes")]


def test_reload_from_loopback_or_with_the_token() -> None:
    assert may_reload(("127.0.0.1", 1), None, "")
    assert may_reload(("::1", 1), None, "")
    assert not may_reload(("10.0.0.7", 1), None, "")
    assert not may_reload(None, None, "")
    assert may_reload(("10.0.0.7", 1), "Bearer s3cret", "s3cret")
    assert not may_reload(("10.0.0.7", 1), "Bearer wrong", "s3cret")
    assert not may_reload(("127.0.0.1", 1), "Bearer wrong", "s3cret")


def test_feedback_once_per_request_id_and_bounded() -> None:
    seen = FeedbackSeen(limit=2)
    assert seen.first("a")
    assert not seen.first("a")
    assert seen.first("b")
    assert seen.first("c")  # "a" is forgotten: the memory is bounded
    assert seen.first("a")


def test_passwords_in_urls_are_masked() -> None:
    assert masked_url("redis://:hunter2@redis:6379/0") == "redis://:********@redis:6379/0"
    assert masked_url("redis://u:hunter2@redis/0") == "redis://u:********@redis/0"
    assert masked_url("redis://redis:6379/0") == "redis://redis:6379/0"
    shown = load_settings(redis_url="redis://:hunter2@r:1/0", redis_password="x").describe()
    assert "hunter2" not in str(shown)
    assert shown["MLPATTERNS_REDIS_PASSWORD"] == "********"


def test_backoff_grows_to_its_cap_with_full_jitter() -> None:
    backoff = Backoff(base=0.1, cap=2.0, draw=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    backoff.reset()
    assert backoff.next_delay() == 0.1
    assert Backoff(draw=lambda: 0.0).next_delay() == 0.0


class _ThreadKillingQueue:
    """A queue whose claim ends the calling thread: a stand-in for a fault a real queue
    cannot be made to cause (an error that escapes the worker's own handling)."""

    def claim(self, worker: str) -> None:
        raise SystemExit


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_whose_threads_died_is_not_alive() -> None:
    worker = Worker(object(), _ThreadKillingQueue(), threads=2)  # type: ignore[arg-type]
    worker.start()
    deadline = time.monotonic() + 5
    while worker.health().threads and time.monotonic() < deadline:
        time.sleep(0.01)
    health = worker.health()
    assert (health.alive, health.threads) == (False, 0)


def test_a_worker_with_a_silent_thread_is_not_alive() -> None:
    release = threading.Event()

    class Hanging:
        def claim(self, worker: str) -> None:
            release.wait(5)

    worker = Worker(object(), Hanging(), stale_after=0.2)  # type: ignore[arg-type]
    worker.start()
    time.sleep(0.4)
    try:
        assert not worker.health().alive
        assert worker.health().threads == 1
    finally:
        release.set()
        worker.stop()
