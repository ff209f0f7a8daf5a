"""The gateway under hostile requests: each test sends what an attacker would, over
real HTTP on loopback, to a gateway whose upstreams record what reaches them."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.test_gateway import start_gateway, write
from tests.support.hostile import (
    Recorder,
    raw_request,
    recording_server,
    rss_bytes,
    slow_body_answer,
    slowloris_seconds,
    status_of,
    stream_chunked,
)
from tests.support.metrics import sample, scrape
from tests.support.processes import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.attack, pytest.mark.usefixtures("data_plane")]
ROW = b'{"data": [[5.9, 3.0, 4.2, 1.5]]}'
LIMITS = {"MLPATTERNS_HTTP_HEADER_TIMEOUT": "2", "MLPATTERNS_HTTP_BODY_TIMEOUT": "3"}


@dataclass
class Setup:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    primary: Recorder
    shadow: Recorder
    bystander: Recorder  # never in the route table: nothing may ever reach it

    def reached(self) -> list[str]:
        return self.primary.targets() + self.shadow.targets()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with recording_server() as primary, recording_server() as shadow, recording_server() as other:
        spec = tmp_path / "iris.yaml"
        write(
            spec,
            {
                "split": [{"version": "svc", "weight": 100}],
                "shadow": {"version": "rf", "percent": 100},
            },
        )
        upstreams = {"svc": primary.url, "rf": shadow.url}
        url, process = start_gateway(spec, upstreams, tmp_path, env=LIMITS)
        yield Setup(url, int(url.rsplit(":", 1)[1]), process, primary, shadow, other)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def settle(setup: Setup, count: int) -> None:
    """Wait until `count` requests reached the upstreams (shadow copies are async)."""
    wait_until("copies arrived", lambda: len(setup.reached()) >= count, 10)
    time.sleep(0.2)


def post(target: str, port: int, body: bytes = ROW, extra: bytes = b"") -> bytes:
    head = (
        f"POST {target} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
    ).encode()
    return raw_request(port, head + extra + b"\r\n" + body)


def test_the_target_never_chooses_the_host(setup: Setup) -> None:
    other = setup.bystander.port
    for target in (f"*@127.0.0.1:{other}/admin", "*"):  # targets the HTTP parser lets through
        answer = post(target, setup.port)
        assert status_of(answer) == 400, answer
        assert b"must be a path starting with /" in answer
    assert status_of(post(f"@127.0.0.1:{other}/metrics", setup.port)) == 400  # the parser's
    # absolute form: only its path is used, towards the route table's upstream
    assert status_of(post(f"http://127.0.0.1:{other}/predict", setup.port)) == 200
    assert status_of(post(f"//127.0.0.1:{other}/predict", setup.port)) == 200  # a path
    settle(setup, 4)
    assert setup.bystander.requests == []
    expected = ["POST /predict HTTP/1.1", f"POST //127.0.0.1:{other}/predict HTTP/1.1"]
    assert setup.primary.targets() == expected
    assert setup.shadow.targets() == expected


def test_the_path_reaches_the_upstream_as_sent(setup: Setup) -> None:
    for target in ("/predict%3Fq=1", "/a/..%2F..%2Fadmin", "/predict?x=%2F"):
        assert status_of(post(target, setup.port)) == 200
    settle(setup, 6)
    expected = [
        "POST /predict%3Fq=1 HTTP/1.1",
        "POST /a/..%2F..%2Fadmin HTTP/1.1",
        "POST /predict?x=%2F HTTP/1.1",
    ]
    assert setup.primary.targets() == expected
    assert setup.shadow.targets() == expected


def test_request_ids_are_bounded_and_inert(setup: Setup) -> None:
    with httpx.Client(base_url=setup.url) as client:
        kept = client.post("/predict", content=ROW, headers={"x-request-id": "user-1:a.b_c"})
        assert kept.headers["x-request-id"] == "user-1:a.b_c"
        for hostile in ("x" * 9000, "a b", "<script>", "x" * 129):
            answer = client.post("/predict", content=ROW, headers={"x-request-id": hostile})
            assert answer.status_code == 200
            given = answer.headers["x-request-id"]
            assert given != hostile
            assert len(given) == 32
    settle(setup, 10)
    assert all(len(h["x-request-id"]) <= 128 for _, h, _ in setup.shadow.requests)
    families = scrape(setup.url)
    assert sample(families, "mlpatterns_gateway_shadow_errors_total") == 0
    assert sample(families, "mlpatterns_gateway_shadow_skipped_total") == 0


def test_headers_are_bounded_in_size_and_count(setup: Setup) -> None:
    huge = b"x-request-id: " + b"x" * (16 << 20) + b"\r\n"
    assert status_of(post("/predict", setup.port, extra=huge)) == 431
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(200))
    assert status_of(post("/predict", setup.port, extra=many)) == 431
    long_target = "/predict?" + "q" * 20000
    assert status_of(post(long_target, setup.port)) == 431
    assert setup.reached() == []
    assert rss_bytes(setup.process.pid) < 200 << 20


def test_hop_by_hop_headers_stop_at_the_gateway(setup: Setup) -> None:
    extra = (
        b"connection: x-secret, keep-alive\r\nx-secret: 1\r\nproxy-authorization: Basic eA==\r\n"
        b"trailer: x-t\r\nte: trailers\r\nx-kept: yes\r\n"
    )
    head = (
        b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n" % len(ROW) + extra + b"\r\n"
    )
    assert status_of(raw_request(setup.port, head + ROW, timeout=3)) == 200
    settle(setup, 2)
    for _, headers, _ in setup.primary.requests + setup.shadow.requests:
        assert headers["x-kept"] == "yes"
        for name in ("x-secret", "proxy-authorization", "trailer", "te"):
            assert name not in headers


def test_bodies_are_capped_while_they_stream(setup: Setup) -> None:
    before = rss_bytes(setup.process.pid)
    for path in (b"/feedback", b"/predict"):
        head = b"POST %s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" % path
        answer, _ = stream_chunked(setup.port, head, total=512 << 20)
        assert status_of(answer) == 413, answer[:200]
    lying = b"POST /feedback HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000\r\n\r\n"
    assert status_of(raw_request(setup.port, lying + b"x" * 1000, timeout=5)) == 413
    assert rss_bytes(setup.process.pid) - before < 64 << 20
    assert setup.reached() == []


def test_a_client_gone_mid_body_is_not_forwarded(setup: Setup) -> None:
    head = b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", setup.port)) as sock:
        sock.sendall(head + b'{"data": [[5.9, 3.0')
    wait_until(
        "the gateway counted the closed client",
        lambda: sample(scrape(setup.url), "mlpatterns_gateway_requests_total", status="499") == 1,
        10,
    )
    assert setup.reached() == []


def test_slow_clients_are_cut_off(setup: Setup) -> None:
    assert slowloris_seconds(setup.port) < 6  # the header timeout is 2 s here
    assert status_of(slow_body_answer(setup.port)) == 408  # the body timeout, 3 s here
    assert setup.reached() == []


def test_errors_do_not_reveal_addresses(tmp_path: Path) -> None:
    spec = tmp_path / "iris.yaml"
    write(spec, {"split": [{"version": "svc", "weight": 100}]})
    dead = f"http://127.0.0.1:{free_port()}"
    url, process = start_gateway(spec, {"svc": dead, "rf": dead}, tmp_path)
    try:
        answer = httpx.post(f"{url}/predict", content=ROW)
        assert answer.status_code == 503
        assert "127.0.0.1" not in answer.text
        assert answer.json()["error"].startswith("version svc is unavailable")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_feedback_is_taken_once_per_request(setup: Setup) -> None:
    with httpx.Client(base_url=setup.url) as client:
        request_id = client.post("/predict", content=ROW).headers["x-request-id"]
        first = client.post("/feedback", json={"request_id": request_id, "outcome": True})
        assert first.status_code == 202
        again = client.post("/feedback", json={"request_id": request_id, "outcome": False})
        assert again.status_code == 409
        assert "already has an outcome" in again.json()["error"]
