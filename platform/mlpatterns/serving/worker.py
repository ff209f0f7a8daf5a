"""The asynchronous pattern's worker: threads that take jobs from the queue and predict.

A queue that fails (Redis restarting, a stalled connection) is retried with
exponential backoff and full jitter, for as long as it takes: a worker outlives
its queue's outages. A job computed while the queue was away is completed once it
is back (its lease makes a second completion impossible). Each thread beats a
heartbeat as it loops; `health()` is what the liveness probe asks, and a process
whose threads have all died should exit non-zero (`serve worker` does).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import numpy as np
import orjson

from mlpatterns.logstreams import RecordLog, prediction_record
from mlpatterns.serving.jobs import Job, JobQueue
from mlpatterns.serving.model import LoadedModel

__all__ = ["Backoff", "Health", "Worker", "serve_health"]

log = logging.getLogger("mlpatterns.worker")
T = TypeVar("T")


@dataclass
class Backoff:
    """Exponential backoff with full jitter: the n-th wait is uniform in
    [0, min(cap, base * 2**n)], so workers that failed together do not retry together."""

    base: float = 0.05
    cap: float = 5.0
    failures: int = 0
    draw: Callable[[], float] = random.random

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 30))
        self.failures += 1
        return float(ceiling * self.draw())

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class Health:
    alive: bool
    threads: int  # threads still running
    stalest: float  # seconds since the least recent heartbeat of a running thread
    completed: int


class Worker:
    """Takes jobs from the queue and predicts, until `stop()`; a job in hand is finished."""

    def __init__(
        self,
        model: LoadedModel,
        queue: JobQueue,
        *,
        name: str = "",
        threads: int = 1,
        poll_interval: float = 0.05,
        log: RecordLog | None = None,
        stale_after: float = 60.0,
        service: str = "",
        version: str = "",
    ) -> None:
        self.model = model
        self.service = service  # in the prediction log; the model's name if empty
        self.version = version
        self.queue = queue
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.poll_interval = poll_interval
        self.log = log
        self.stale_after = stale_after
        self.completed = 0
        self._stopping = threading.Event()
        self._beats = [time.monotonic()] * threads
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"{self.name}-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)

    def health(self) -> Health:
        """Alive while some thread runs and every running thread beat recently."""
        now = time.monotonic()
        running = [i for i, t in enumerate(self._threads) if t.is_alive()]
        stalest = max((now - self._beats[i] for i in running), default=float("inf"))
        alive = bool(running) and stalest <= self.stale_after
        return Health(alive, len(running), stalest, self.completed)

    def _loop(self, index: int) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            job = self._retrying(lambda: self.queue.claim(self.name), index, backoff, "claim")
            if job is None:
                self._stopping.wait(self.poll_interval)
                continue
            self._work(job, index, backoff)

    def _retrying(self, call: Callable[[], T], index: int, backoff: Backoff, what: str) -> T | None:
        """`call()` until it succeeds or the worker stops (then None). Retrying is
        progress: it beats; only a call that never returns stops the heartbeat."""
        while not self._stopping.is_set():
            self._beats[index] = time.monotonic()
            try:
                result = call()
            except Exception as error:  # the queue's fault, never the job's
                delay = backoff.next_delay()
                log.warning("%s: %s failed (retry in %.2f s): %r", self.name, what, delay, error)
                self._stopping.wait(delay)
                continue
            backoff.reset()
            return result
        return None

    def _work(self, job: Job, index: int, backoff: Backoff) -> None:
        started = time.perf_counter()
        try:
            payload = orjson.loads(job.payload)
            rows = np.asarray(payload["data"], dtype=np.float32)
            if rows.ndim != 2 or rows.shape[1] != self.model.n_features:
                raise ValueError(
                    f"rows of shape {rows.shape}; the model takes {self.model.n_features} features"
                )
            prediction = self.model.predict(rows)
            if not prediction.finite:
                raise ValueError(
                    "the model cannot compute these inputs (non-finite results); values of "
                    "this magnitude are outside its range"
                )
        except Exception as error:  # the job's failure, recorded on the job; the worker goes on
            reason = f"{type(error).__name__}: {error}"
            self._retrying(lambda: self.queue.fail(job, reason), index, backoff, f"fail {job.id}")
            return
        result = {"labels": prediction.labels, "probabilities": prediction.probabilities}
        encoded = orjson.dumps(result)
        done = self._retrying(
            lambda: self.queue.complete(job, encoded), index, backoff, f"complete {job.id}"
        )
        if done:
            self.completed += 1
            if self.log is not None:
                self.log.submit(
                    prediction_record(
                        request_id=payload.get("request_id") or job.id,
                        service=self.service or self.model.name,
                        version=self.version,
                        model=self.model.version,
                        digest=self.model.sha256,
                        inputs=payload["data"],
                        outputs=result,
                        latency=time.perf_counter() - started,
                    )
                )


def serve_health(worker: Worker, host: str, port: int) -> ThreadingHTTPServer:
    """`GET /health` on a thread of its own: 200 while `worker.health()` is alive, else
    503 (what the worker Deployment's liveness probe asks)."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # seconds for a probe's request: a silent connection is dropped

        def do_GET(self) -> None:
            health = worker.health()
            body = orjson.dumps(
                {
                    "alive": health.alive,
                    "threads": health.threads,
                    "stalest_heartbeat_seconds": round(min(health.stalest, 1e9), 3),
                    "completed": health.completed,
                }
            )
            self.send_response(200 if health.alive and self.path == "/health" else 503)
            if self.path != "/health":
                body = b'{"error": "GET /health"}'
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
