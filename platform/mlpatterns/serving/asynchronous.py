"""The asynchronous pattern: an API that answers at once with a job id, and workers
that predict from the queue.

    POST /predict {"data": [[...]]}  -> 202 {"job_id", "state": "pending", "status_url"}
    GET  /jobs/{job_id}              -> {"state": pending|running|done|failed, "result"|"error"}

A job's id is random, or with `job_ids="request"` the request's own id (the follow-up
stage of multiple-stage prediction: the client fetches `/jobs/{its request id}`); a
second job with an id already taken is refused with 409.

The API checks the input against the model's signature before queueing it, so a
client's mistake is a 4xx at once, never a failed job later. A full queue answers
429 and a queue that does not answer 503, both with Retry-After. The workers are
in `worker.py`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

import orjson
from prometheus_client import Gauge
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mlpatterns.logsetup import request_fields
from mlpatterns.serving import app as model_server
from mlpatterns.serving import core as server
from mlpatterns.serving import v2
from mlpatterns.serving.inputs import AnswerError, ClientError, simple_request
from mlpatterns.serving.jobs import JobQueue

__all__ = ["JobIds", "QueueUnavailable", "T", "create_async_app", "log"]

log = logging.getLogger("mlpatterns.serving")
T = TypeVar("T")
JobIds = Literal["random", "request"]


class QueueUnavailable(AnswerError):
    """The queue did not answer: 503, and the client may try again."""


def create_async_app(
    state: server.ServerState,
    queue: JobQueue,
    *,
    max_depth: int = 10_000,
    queue_threads: int = 4,
    depth_every: float = 1.0,
    job_ids: JobIds = "random",
) -> Starlette:
    """The API's app. Queue calls run on `queue_threads` threads of their own, so a
    stalled queue never blocks the event loop (health and metrics stay prompt); its
    depth is read every `depth_every` seconds, and a submit beyond `max_depth` waiting
    jobs is refused with 429 and Retry-After rather than grow the queue's memory."""
    executor = ThreadPoolExecutor(queue_threads, thread_name_prefix="queue")
    waiting = {"depth": 0}
    depth = Gauge(
        "mlpatterns_queue_depth",
        "Jobs waiting for a worker.",
        ("service", "version"),
        registry=state.metrics.registry,
    )
    depth.labels(state.service, state.model.version).set_function(lambda: waiting["depth"])

    async def on_queue(call: Callable[[], T], request_id: str) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, call)
        except Exception as error:
            log.warning(
                "request %s: the job queue failed: %r",
                request_id,
                error,
                extra=request_fields(request_id),
            )
            raise QueueUnavailable(
                503,
                f"the job queue is unavailable; try again (request id {request_id})",
                retry_after=1,
            ) from None

    async def submit(request: Request, state: server.ServerState, request_id: str) -> Response:
        body = await server.read_body(request, state.config.max_body_bytes)
        rows = simple_request(body, state.model.n_features)
        if waiting["depth"] >= max_depth:
            message = f"the queue holds {waiting['depth']} jobs (at most {max_depth}); try later"
            raise ClientError(429, message, retry_after=5)
        job_id = request_id if job_ids == "request" else uuid.uuid4().hex
        payload = orjson.dumps({"data": rows.nested(), "request_id": request_id})
        if not await on_queue(lambda: queue.submit(job_id, payload), request_id):
            raise ClientError(
                409, f"job {job_id!r} exists already: send a new x-request-id for a new job"
            )
        waiting["depth"] += 1  # until the next reading
        answer = {"job_id": job_id, "state": "pending", "status_url": f"/jobs/{job_id}"}
        return server.json_response(state, request_id, answer, 202)

    async def job_status(request: Request, state: server.ServerState, request_id: str) -> Response:
        job_id = request.path_params["job_id"]
        status = await on_queue(lambda: queue.status(job_id), request_id)
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

    endpoints: server.Endpoints = [
        ("/predict", submit, "POST"),
        ("/jobs/{job_id}", job_status, "GET"),
        ("/v2/health/live", v2.live, "GET"),
        ("/v2/health/ready", v2.ready, "GET"),
        ("/health", model_server.health, "GET"),
        ("/metadata", model_server.metadata, "GET"),
        ("/metrics", model_server.metrics, "GET"),
    ]

    async def watch_depth() -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                waiting["depth"] = await loop.run_in_executor(executor, queue.depth)
            except Exception as error:
                log.warning("cannot read the job queue's depth: %r", error)
            await asyncio.sleep(depth_every)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.get_running_loop().create_task(watch_depth())
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            watcher.cancel()
            executor.shutdown(wait=True, cancel_futures=True)
            queue.close()

    app = Starlette(
        routes=server.routes(state, endpoints),
        lifespan=lifespan,
        exception_handlers={HTTPException: model_server.http_error},
    )
    app.state.server = state
    return app
