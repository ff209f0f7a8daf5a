"""The asynchronous pattern under faults: a real Redis restarted under load, a Redis
that stops answering, a queue filled faster than it drains."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis

from mlpatterns.serving.jobs import open_queue
from tests.integration.test_asynchronous import ROWS, spawn
from tests.support.processes import free_port, http_ok, wait_until
from tests.support.servers import redis_server

pytestmark = [pytest.mark.integration, pytest.mark.attack]


def start_api(home: Path, queue: str, env: dict[str, str] | None = None) -> tuple[str, Popen]:
    port = free_port()
    api = spawn(
        home, "async-api", "--model", "models:/iris@candidate", "--queue", queue,
        "--port", str(port), env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until("async API", lambda: http_ok(f"{url}/v2/health/ready"), 60)
    return url, api


Popen = subprocess.Popen[bytes]


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def stop(*processes: Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def redis_pid(port: int) -> int:
    """The redis-server listening on `port`, found in /proc by the title it gives its
    process ("redis-server 127.0.0.1:PORT")."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"redis-server") and f"127.0.0.1:{port}".encode() in title:
                return int(entry.name)
    raise AssertionError(f"no redis-server on port {port}")


def submit_until_taken(client: httpx.Client, row: list[float], refused: list[int]) -> str:
    """Submit one job, again after each 503 (nothing was queued), for at most 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = client.post("/predict", json={"data": [row]})
        if answer.status_code == 202:
            return str(answer.json()["job_id"])
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        refused.append(503)
        time.sleep(0.1)
    raise AssertionError("the queue never took the job")


def test_every_job_completes_once_across_a_redis_restart(
    trained: tuple[Path, str], tmp_path: Path, stack: ExitStack
) -> None:
    home, folder, port = trained[0], tmp_path / "redis", free_port()
    url = stack.enter_context(redis_server(folder, port=port, persistent=True))
    api_url, api = start_api(home, url)
    health_ports = [free_port(), free_port()]
    workers = [
        spawn(
            home,
            "worker",
            "--model",
            "models:/iris@candidate",
            "--queue",
            url,
            "--visibility-timeout",
            "5",
            "--no-log-predictions",
            "--health-port",
            str(p),
        )
        for p in health_ports
    ]
    stack.callback(stop, api, *workers)
    for p in health_ports:
        wait_until("worker health", lambda p=p: http_ok(f"http://127.0.0.1:{p}/health"), 60)
    jobs: dict[str, int] = {}
    refused: list[int] = []
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for index in range(100):
            jobs[submit_until_taken(client, ROWS[index % 3], refused)] = index % 3
        os.kill(redis_pid(port), signal.SIGTERM)  # Redis goes away for about two seconds
        down = time.monotonic()
        while time.monotonic() - down < 2:
            answer = client.post("/predict", json={"data": [ROWS[0]]})
            assert answer.status_code in (202, 503), answer.text
            if answer.status_code == 202:
                jobs[answer.json()["job_id"]] = 0
            else:
                refused.append(503)
        with redis_server(folder, port=port, persistent=True):
            for index in range(100):  # during the restart and after it
                jobs[submit_until_taken(client, ROWS[index % 3], refused)] = index % 3

            def all_done() -> bool:
                return all(
                    client.get(f"/jobs/{job_id}").json()["state"] == "done" for job_id in jobs
                )

            wait_until("every job done", all_done, 120)
            assert [w.poll() for w in workers] == [None, None]  # the workers lived through it
            for p in health_ports:
                assert httpx.get(f"http://127.0.0.1:{p}/health").json()["alive"] is True
            queue = open_queue(url)
            assert [queue.completions(job_id) for job_id in jobs] == [1] * len(jobs)
            queue.close()
            leftovers = redis.Redis.from_url(url).hgetall(f"mlpatterns:jobs:job:{next(iter(jobs))}")
            assert b"payload" not in leftovers  # a done job keeps its result, not its input
    assert refused, "no submission met the outage"


def test_a_stalled_redis_gets_503_and_the_api_stays_live(
    trained: tuple[Path, str], tmp_path: Path, stack: ExitStack
) -> None:
    port = free_port()
    url = stack.enter_context(redis_server(tmp_path / "redis", port=port))
    api_url, api = start_api(trained[0], url)
    stack.callback(stop, api)
    pid = redis_pid(port)
    os.kill(pid, signal.SIGSTOP)
    stack.callback(os.kill, pid, signal.SIGCONT)
    with httpx.Client(base_url=api_url, timeout=30) as client:
        started = time.monotonic()
        pending = client.build_request("POST", "/predict", json={"data": [ROWS[0]]})
        answer = client.send(pending)
        assert answer.status_code == 503
        assert "job queue is unavailable" in answer.json()["error"]
        assert answer.headers["retry-after"] == "1"
        assert time.monotonic() - started < 15
        for path in ("/v2/health/live", "/metrics"):  # never behind the stalled queue
            started = time.monotonic()
            assert client.get(path).status_code == 200
            assert time.monotonic() - started < 1


def test_a_full_queue_answers_429(trained: tuple[Path, str], tmp_path: Path) -> None:
    queue = f"sqlite:///{tmp_path / 'jobs.db'}"
    api_url, api = start_api(trained[0], queue, env={"MLPATTERNS_ASYNC_MAX_QUEUE": "5"})
    try:
        with httpx.Client(base_url=api_url) as client:
            for _ in range(5):
                assert client.post("/predict", json={"data": [ROWS[0]]}).status_code == 202
            answer = client.post("/predict", json={"data": [ROWS[0]]})
            assert answer.status_code == 429
            assert answer.headers["retry-after"] == "5"
            assert "at most 5" in answer.json()["error"]
    finally:
        stop(api)


def test_a_non_finite_result_fails_the_job(trained: tuple[Path, str], tmp_path: Path) -> None:
    """Inputs within float32's range that overflow the model's math: the synchronous
    server answers 422; the worker stored NaN as a done result."""
    queue = f"sqlite:///{tmp_path / 'jobs.db'}"
    api_url, api = start_api(trained[0], queue)
    worker = spawn(
        trained[0], "worker", "--model", "models:/iris@candidate", "--queue", queue,
        "--max-attempts", "1", "--no-log-predictions",
    )  # fmt: skip
    try:
        with httpx.Client(base_url=api_url) as client:
            overflow = [[3.4e38, -3.4e38, 3.4e38, -3.4e38]]
            job_id = client.post("/predict", json={"data": overflow}).json()["job_id"]
            wait_until(
                "the job failed",
                lambda: client.get(f"/jobs/{job_id}").json()["state"] == "failed",
                60,
            )
            body = client.get(f"/jobs/{job_id}").json()
            assert "non-finite" in body["error"]
            assert "result" not in body
    finally:
        stop(api, worker)
