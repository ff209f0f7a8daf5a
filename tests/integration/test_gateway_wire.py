"""The gateway's data path on the wire: kept-alive upstream connections (and the one
an upstream closed while idle), chunked and HEAD answers, pipelined requests, 100
continue, the connection limit and the drain on SIGTERM. Real `mlpatterns serve
gateway` processes over loopback, in front of a small HTTP/1.1 upstream written
here so that it can close, chunk and count what a test needs."""

from __future__ import annotations

import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.test_gateway import start_gateway, write
from tests.support.hostile import raw_request, read_answer, status_of

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]
ROW = b'{"data": [[5.9, 3.0, 4.2, 1.5]]}'
ANSWER = b'{"probabilities": [[0.9, 0.1]], "classes": ["a", "b"]}'


@dataclass
class Upstream:
    """HTTP/1.1 with keep-alive; with `drop_after`, a connection that has answered that
    many requests closes on the next one unanswered (as an upstream's idle timeout
    closes a connection just as a request arrives); `chunked` answers in chunks."""

    drop_after: int = 0
    dropped: int = 0
    chunked: bool = False
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _answer_bytes(upstream: Upstream, method: bytes) -> bytes:
    if upstream.chunked and method != b"HEAD":
        half = len(ANSWER) // 2
        chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            half,
            ANSWER[:half],
            len(ANSWER) - half,
            ANSWER[half:],
        )
        return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(ANSWER) + (b"" if method == b"HEAD" else ANSWER)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            state.connections += 1
            answered = 0
            while True:
                line = self.rfile.readline(65536)
                if not line:
                    return
                length = 0
                while (header := self.rfile.readline(65536)) not in (b"\r\n", b""):
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.rfile.read(length)
                if state.drop_after and answered >= state.drop_after:
                    state.dropped += 1
                    return
                state.requests.append(line.strip())
                self.wfile.write(_answer_bytes(state, line.split(b" ")[0]))
                answered += 1

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Gateways:
    """`mlpatterns serve gateway` processes in front of an upstream, stopped at the end."""

    home: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, upstream: Upstream, env: dict[str, str] | None = None) -> str:
        spec = self.home / "iris.yaml"
        write(spec, {"split": [{"version": "svc", "weight": 100}]})
        url, process = start_gateway(
            spec, {"svc": upstream.url, "rf": upstream.url}, self.home, env
        )
        self.started.append(process)
        return url


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    running = Gateways(tmp_path)
    yield running
    for process in running.started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_upstream_connections_are_kept_alive(upstream: Upstream, gateways: Gateways) -> None:
    url = gateways.start(upstream)
    with httpx.Client(base_url=url) as client:
        for _ in range(20):
            assert client.post("/predict", content=ROW).status_code == 200
    assert upstream.connections == 1


def test_a_kept_alive_connection_closed_unanswered_is_replaced(
    upstream: Upstream, gateways: Gateways
) -> None:
    upstream.drop_after = 1
    url = gateways.start(upstream)
    with httpx.Client(base_url=url) as client:
        for _ in range(5):
            answer = client.post("/predict", content=ROW)
            assert answer.status_code == 200, answer.text
    assert len(upstream.requests) == 5
    assert upstream.dropped == 4  # each sent once more, on a new connection


def test_a_new_connection_closed_unanswered_is_a_503(
    upstream: Upstream, gateways: Gateways
) -> None:
    upstream.drop_after = -1  # every request, the first on a connection too
    url = gateways.start(upstream)
    answer = httpx.post(f"{url}/predict", content=ROW)
    assert answer.status_code == 503
    assert upstream.dropped == 1  # a fresh connection's failure is the upstream's: no resend


def test_chunked_answers_go_on_whole_and_head_has_no_body(
    upstream: Upstream, gateways: Gateways
) -> None:
    upstream.chunked = True
    url = gateways.start(upstream)
    with httpx.Client(base_url=url) as client:
        answer = client.post("/predict", content=ROW)
        assert answer.content == ANSWER
        assert answer.headers["content-length"] == str(len(ANSWER))
        assert "transfer-encoding" not in answer.headers
        upstream.chunked = False
        head = client.head("/predict")
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == str(len(ANSWER))
        assert client.post("/predict", content=ROW).content == ANSWER  # still in step


def test_pipelined_requests_are_answered_in_order(upstream: Upstream, gateways: Gateways) -> None:
    port = port_of(gateways.start(upstream))
    one = b"POST /predict HTTP/1.1\r\nhost: x\r\nx-request-id: r%d\r\ncontent-length: %d\r\n\r\n"
    requests = b"".join(one % (i, len(ROW)) + ROW for i in range(3))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(requests)
        answers = b""
        deadline = time.monotonic() + 10
        while answers.count(b"HTTP/1.1 200") < 3 or not answers.endswith(ANSWER):
            assert time.monotonic() < deadline, answers
            answers += sock.recv(65536)
    ids = [line for line in answers.split(b"\r\n") if line.startswith(b"x-request-id")]
    assert ids == [b"x-request-id: r0", b"x-request-id: r1", b"x-request-id: r2"]


def test_expect_100_continue_is_answered(upstream: Upstream, gateways: Gateways) -> None:
    port = port_of(gateways.start(upstream))
    head = b"POST /predict HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: %d\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head % len(ROW) + b"connection: close\r\n\r\n")
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(ROW)
        assert status_of(read_answer(sock, 5)) == 200
    assert b"expect" not in b"".join(upstream.requests)
    refused = raw_request(port, head % len(ROW) + b"expect: later\r\n\r\n" + ROW)
    assert status_of(refused) == 417


def test_upgrades_are_refused_before_anything_is_forwarded(
    upstream: Upstream, gateways: Gateways
) -> None:
    port = port_of(gateways.start(upstream))
    head = b"POST /predict HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: %s\r\n"
    for protocol in (b"websocket", b"h2c"):
        answer = raw_request(port, head % protocol + b"content-length: 5\r\n\r\nhello")
        assert status_of(answer) == 400
        assert b"does not upgrade connections" in answer
    assert upstream.requests == []


def test_connections_beyond_the_limit_get_503(upstream: Upstream, gateways: Gateways) -> None:
    url = gateways.start(upstream, {"MLPATTERNS_HTTP_MAX_CONNECTIONS": "2"})
    port = port_of(url)
    with (
        socket.create_connection(("127.0.0.1", port)),
        socket.create_connection(("127.0.0.1", port)),
    ):
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as refused:
            refused.sendall(b"GET /-/health HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = b""
            while chunk := refused.recv(65536):  # until the gateway closes it
                answer += chunk
        assert status_of(answer) == 503
        assert b"connection limit" in answer
    assert httpx.get(f"{url}/-/health").status_code == 200  # the limit frees with the close


def test_a_drain_answers_with_connection_close_then_exits(
    upstream: Upstream, gateways: Gateways
) -> None:
    url = gateways.start(upstream, {"MLPATTERNS_HTTP_DRAIN_SECONDS": "2"})
    process = gateways.started[-1]
    with httpx.Client(base_url=url) as client:
        assert "connection" not in client.post("/predict", content=ROW).headers
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        draining = client.post("/predict", content=ROW)
        assert draining.status_code == 200
        assert draining.headers["connection"] == "close"
    started = time.monotonic()
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - started < 5
