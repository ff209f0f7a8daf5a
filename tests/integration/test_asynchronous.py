"""The asynchronous pattern end to end: the API and several worker processes share a
queue (SQLite, then Redis); one worker is SIGKILLed under load; every job still ends
done exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlpatterns.serving.jobs import open_queue
from tests.support.processes import die_with_parent, free_port, http_ok, wait_until

pytestmark = pytest.mark.integration
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
LABELS = ["setosa", "virginica", "versicolor"]


def spawn(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [MLPATTERNS, "serve", *args],
        env={**os.environ, "MLPATTERNS_HOME": str(home), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_jobs_survive_a_killed_worker(
    backend: str, trained: tuple[Path, str], tmp_path: Path, redis_url: str
) -> None:
    home = trained[0]
    queue_url = (
        f"sqlite:///{tmp_path / 'jobs.db'}"
        if backend == "sqlite"
        else redis_url.replace("/0", "/1")
    )
    if backend == "redis":
        import redis

        redis.Redis.from_url(queue_url).flushdb()
    port = free_port()
    api = spawn(
        home,
        "async-api",
        "--model",
        "models:/iris@candidate",
        "--queue",
        queue_url,
        "--port",
        str(port),
    )
    url = f"http://127.0.0.1:{port}"
    worker_args = [
        "worker",
        "--model",
        "models:/iris@candidate",
        "--queue",
        queue_url,
        "--visibility-timeout",
        "1",
        "--no-log-predictions",
    ]
    workers: list[subprocess.Popen[bytes]] = []
    jobs: dict[str, int] = {}
    try:
        wait_until("async API", lambda: http_ok(f"{url}/v2/health/ready"), 60)
        with httpx.Client(base_url=url) as client:
            for index in range(300):
                if index == 50:  # submitting needed no worker: all 50 are answered and waiting
                    states = {client.get(f"/jobs/{job_id}").json()["state"] for job_id in jobs}
                    assert states == {"pending"}
                    workers.extend(spawn(home, *worker_args) for _ in range(3))
                answer = client.post("/predict", json={"data": [ROWS[index % 3]]})
                assert answer.status_code == 202, answer.text
                jobs[answer.json()["job_id"]] = index % 3
                if index == 150:
                    workers[0].send_signal(signal.SIGKILL)  # dies holding whatever it had
            assert client.get(f"/jobs/{next(iter(jobs))}").json()["state"] in (
                "pending",
                "running",
                "done",
            )

            def all_done() -> bool:
                states = [client.get(f"/jobs/{job_id}").json()["state"] for job_id in jobs]
                return all(state == "done" for state in states)

            wait_until("every job done", all_done, 120)
            for job_id, row in jobs.items():
                body = client.get(f"/jobs/{job_id}").json()
                assert body["result"]["labels"] == [LABELS[row]]
            unknown = client.get("/jobs/nope")
            assert unknown.status_code == 404
            bad = client.post("/predict", json={"data": [[1, 2]]})
            assert bad.status_code == 422  # a client's mistake is refused at once, not queued
        queue = open_queue(queue_url)
        assert [queue.completions(job_id) for job_id in jobs] == [1] * len(jobs)  # exactly once
        queue.close()
    finally:
        for process in (api, *workers):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers[1:]:
            assert process.wait(timeout=60) == 0
        api.wait(timeout=60)
