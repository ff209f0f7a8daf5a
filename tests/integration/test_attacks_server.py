"""The model server under hostile clients: oversized and numerous headers, slow
clients, a client gone mid-body, hostile request ids. The same limits hold in the
async API and the preprocess server, which share its HTTP setup (mlpatterns.web)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_model_server import Server, start_server
from tests.support.hostile import (
    raw_request,
    rss_bytes,
    slow_body_answer,
    slowloris_seconds,
    status_of,
)
from tests.support.metrics import sample, scrape

pytestmark = [pytest.mark.integration, pytest.mark.attack]
ROW = b'{"data": [[5.9, 3.0, 4.2, 1.5]]}'


@pytest.fixture(scope="module")
def server(trained: tuple[Path, str]) -> Iterator[Server]:
    running = start_server(
        trained[0],
        "models:/iris@candidate",
        env={"MLPATTERNS_HTTP_HEADER_TIMEOUT": "2", "MLPATTERNS_HTTP_BODY_TIMEOUT": "3"},
    )
    yield running
    running.stop()


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def logged(server: Server) -> list[str]:
    folder = server.home / "logs" / "predictions"
    return [line for path in folder.glob("*/*.jsonl") for line in path.read_text().splitlines()]


def test_headers_are_bounded(server: Server) -> None:
    port = port_of(server)
    head = b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n" % len(ROW)
    huge = b"x-request-id: " + b"x" * (16 << 20) + b"\r\n"
    assert status_of(raw_request(port, head + huge + b"\r\n" + ROW)) == 431
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(200))
    assert status_of(raw_request(port, head + many + b"\r\n" + ROW)) == 431
    assert rss_bytes(server.process.pid) < 400 << 20


def test_request_ids_are_bounded_and_inert(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        for hostile in ("x" * 9000, "a b", "<script>"):
            answer = client.post("/predict", content=ROW, headers={"x-request-id": hostile})
            assert answer.status_code == 200
            assert answer.headers["x-request-id"] != hostile
        kept = client.post("/predict", content=ROW, headers={"x-request-id": "r-1"})
        assert kept.headers["x-request-id"] == "r-1"


def test_a_client_gone_mid_body_is_neither_predicted_nor_logged(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nhost: x\r\nx-request-id: gone-1\r\n"
            b"content-length: 1000\r\n\r\n" + ROW
        )
    time.sleep(1)  # the log is flushed every 0.2 s
    assert not [line for line in logged(server) if '"gone-1"' in line]
    families = scrape(server.url)
    assert sample(families, "mlpatterns_requests_total", status="499") >= 1


def test_slow_clients_are_cut_off(server: Server) -> None:
    assert slowloris_seconds(port_of(server)) < 6  # the header timeout is 2 s here
    assert status_of(slow_body_answer(port_of(server))) == 408
