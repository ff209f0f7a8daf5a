"""The asynchronous pattern: an API that answers at once with a job id, and workers
that predict from the queue.

    POST /predict {"data": [[...]]}  -> 202 {"job_id", "state": "pending", "status_url"}
    GET  /jobs/{job_id}              -> {"state": pending|running|done|failed, "result"|"error"}

The API checks the input against the model's signature before queueing it, so a
client's mistake is a 4xx at once, never a failed job later.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import orjson
from prometheus_client import Gauge
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mlpatterns.serving import app as server
from mlpatterns.serving.inputs import ClientError, simple_request
from mlpatterns.serving.jobs import Job, JobQueue
from mlpatterns.serving.model import LoadedModel
from mlpatterns.serving.predlog import PredictionLog, record


def create_async_app(state: server.ServerState, queue: JobQueue) -> Starlette:
    depth = Gauge(
        "mlpatterns_queue_depth",
        "Jobs waiting for a worker.",
        ("service", "version"),
        registry=state.metrics.registry,
    )
    depth.labels(state.service, state.model.version).set_function(queue.depth)

    async def submit(request: Request, state: server.ServerState, request_id: str) -> Response:
        body = await server.read_body(request, state.config.max_body_bytes)
        rows = simple_request(body, state.model.n_features)
        job_id = uuid.uuid4().hex
        queue.submit(job_id, orjson.dumps({"data": rows.nested(), "request_id": request_id}))
        answer = {"job_id": job_id, "state": "pending", "status_url": f"/jobs/{job_id}"}
        return server.json_response(state, request_id, answer, 202)

    async def job_status(request: Request, state: server.ServerState, request_id: str) -> Response:
        job_id = request.path_params["job_id"]
        status = queue.status(job_id)
        if status is None:
            raise ClientError(404, f"no job {job_id!r}: unknown, or its result has expired")
        answer: dict[str, object] = {
            "job_id": job_id,
            "state": status.state,
            "attempts": status.attempts,
        }
        if status.state == "done" and status.result is not None:
            answer["result"] = orjson.loads(status.result)
        if status.error:
            answer["error"] = status.error
        return server.json_response(state, request_id, answer)

    table: server.RouteTable = [
        ("/predict", submit, "POST"),
        ("/jobs/{job_id}", job_status, "GET"),
        ("/v2/health/live", server.live, "GET"),
        ("/v2/health/ready", server.ready, "GET"),
        ("/health", server.health, "GET"),
        ("/metadata", server.metadata, "GET"),
        ("/metrics", server.metrics, "GET"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            queue.close()

    app = Starlette(
        routes=server.routes(state, table),
        lifespan=lifespan,
        exception_handlers={HTTPException: server.http_error},
    )
    app.state.server = state
    return app


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
        log: PredictionLog | None = None,
    ) -> None:
        self.model = model
        self.queue = queue
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.poll_interval = poll_interval
        self.log = log
        self.completed = 0
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"{self.name}-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = self.queue.claim(self.name)
            if job is None:
                self._stopping.wait(self.poll_interval)
                continue
            self._work(job)

    def _work(self, job: Job) -> None:
        started = time.perf_counter()
        try:
            payload = orjson.loads(job.payload)
            rows = np.asarray(payload["data"], dtype=np.float32)
            if rows.ndim != 2 or rows.shape[1] != self.model.n_features:
                raise ValueError(
                    f"rows of shape {rows.shape}; the model takes {self.model.n_features} features"
                )
            prediction = self.model.predict(rows)
        except Exception as error:  # the job's failure, recorded on the job; the worker goes on
            self.queue.fail(job, f"{type(error).__name__}: {error}")
            return
        result = {"labels": prediction.labels, "probabilities": prediction.probabilities}
        if self.queue.complete(job, orjson.dumps(result)):
            self.completed += 1
            if self.log is not None:
                self.log.submit(
                    record(
                        request_id=payload.get("request_id") or job.id,
                        service=self.model.name,
                        version=self.model.version,
                        inputs=payload["data"],
                        outputs=result,
                        latency=time.perf_counter() - started,
                    )
                )
