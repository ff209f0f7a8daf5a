"""Clients of the job-shaped patterns (asynchronous jobs, batch rows) and of a served
model's version, shared by the real node's tests and its benchmarks."""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from sklearn.datasets import load_iris

__all__ = [
    "FEATURES",
    "ROWS",
    "await_results",
    "batch_summary",
    "iris_rows_csv",
    "served_version",
    "submit_jobs",
]

ROWS = load_iris().data
FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


def submit_jobs(
    url: str, count: int, clients: int = 4, jobs: dict[str, int] | None = None
) -> dict[str, int]:
    """`count` jobs, iris' rows in turn, submitted by `clients` threads at once; the
    row of each job id (put in `jobs` as each is answered). Raises on any answer but 202."""
    jobs = {} if jobs is None else jobs

    def submit(rows: list[int]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for row in rows:
                answer = client.post("/predict", json={"data": [ROWS[row].tolist()]})
                if answer.status_code != 202:
                    raise AssertionError(f"{answer.status_code}: {answer.text}")
                jobs[answer.json()["job_id"]] = row

    shares = [[row % len(ROWS) for row in range(n, count, clients)] for n in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        for submitted in [pool.submit(submit, share) for share in shares]:
            submitted.result(timeout=600)
    return jobs


def await_results(url: str, jobs: dict[str, int], limit: float) -> dict[str, str]:
    """Each job's label once it is done, asking again every 0.1 s for at most `limit`
    seconds; raises on a failed job."""
    results: dict[str, str] = {}
    deadline = time.monotonic() + limit
    with httpx.Client(base_url=url, timeout=30) as client:
        while len(results) < len(jobs) and time.monotonic() < deadline:
            for job_id in [j for j in jobs if j not in results]:
                body = client.get(f"/jobs/{job_id}").json()
                if body["state"] == "failed":
                    raise AssertionError(f"job {job_id} failed: {body}")
                if body["state"] != "done":
                    break  # jobs end roughly in order: ask the rest on the next round
                results[job_id] = body["result"]["labels"][0]
            time.sleep(0.1)
    return results


def iris_rows_csv(count: int) -> bytes:
    """`count` rows (ids 0 to count - 1) cycling through iris' 150, as CSV."""
    tiled = np.tile(ROWS, (count // len(ROWS) + 1, 1))[:count]
    table = pa.table(
        {"id": np.arange(count), **{name: tiled[:, i] for i, name in enumerate(FEATURES)}}
    )
    written = pa.BufferOutputStream()
    pa_csv.write_csv(table, written)
    return bytes(written.getvalue())


def served_version(url: str) -> str:
    """The model version that answers a prediction at `url`."""
    answer = httpx.post(f"{url}/predict", json={"data": ROWS[:1].tolist()}, timeout=10)
    if answer.status_code != 200:
        raise AssertionError(f"{answer.status_code}: {answer.text}")
    return answer.headers["x-mlpatterns-model-version"]


def batch_summary(log: str) -> dict[str, Any]:
    """The JSON summary `mlpatterns batch predict` prints last on standard output, found
    in a pod's log, where standard error's lines (a library's at exit) may follow it."""
    for line in reversed(log.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                summary: dict[str, Any] = json.loads(line)
                if "predicted" in summary:
                    return summary
    raise AssertionError(f"no batch summary in the log; its end:\n{log[-2000:]}")
