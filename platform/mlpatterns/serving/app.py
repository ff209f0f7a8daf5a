"""The model server's HTTP application (Starlette).

Speaks the Open Inference Protocol v2 (`/v2/...`) and the catalog's simple API
(`/predict`, `/predict/label`, `/metadata`, `/health`), plus `/metrics`. Every
response carries `x-request-id` (echoed or generated) and `x-mlpatterns-version`.
A client's mistake is always a 4xx with a JSON `{"error": ...}` that says what was
wrong; only the server's own faults are 5xx.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlpatterns import web
from mlpatterns.logsetup import request_fields
from mlpatterns.logstreams import RecordLog, prediction_record
from mlpatterns.process import calm_garbage_collector
from mlpatterns.serving.batching import MicroBatcher
from mlpatterns.serving.inputs import AnswerError, ClientError, Rows, simple_request, v2_request
from mlpatterns.serving.metrics import ServerMetrics
from mlpatterns.serving.model import LoadedModel, Prediction
from mlpatterns.serving.remote import RemotePredictor

__all__ = [
    "CLIENT_CLOSED",
    "DEFAULT_MAX_BODY_BYTES",
    "JSON",
    "Endpoints",
    "Handler",
    "JSONAnswer",
    "ServerConfig",
    "ServerState",
    "create_app",
    "endpoint",
    "header",
    "health",
    "http_error",
    "infer",
    "is_shadow_copy",
    "json_response",
    "live",
    "log",
    "metadata",
    "metrics",
    "model_metadata",
    "model_ready",
    "openapi",
    "predict",
    "predict_label",
    "read_body",
    "ready",
    "request_id_of",
    "routes",
    "server_metadata",
]

log = logging.getLogger("mlpatterns.serving")
DEFAULT_MAX_BODY_BYTES = web.WebLimits.max_body_bytes
CLIENT_CLOSED = 499
JSON = "application/json"


@dataclass
class ServerConfig:
    service: str = ""  # defaults to the model's name
    version: str = ""  # the ModelService version this server is, for the logs
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    batching: bool = True
    max_batch_rows: int = 256
    max_batch_wait: float = 0.0
    inference_thread: bool = False
    log_inputs: bool = True


@dataclass
class ServerState:
    model: LoadedModel
    config: ServerConfig
    metrics: ServerMetrics
    prediction_log: RecordLog | None = None
    batcher: MicroBatcher | None = None
    remote: RemotePredictor | None = None  # set: this is a preprocess server
    ready: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.config.service or self.model.name

    def predict(self, rows: Rows, request_id: str) -> Awaitable[Prediction]:
        if self.batcher is not None:  # the batch's future itself: no coroutine per request
            return self.batcher.predict(rows)
        if self.remote is not None:  # preprocess here, predict there
            return self.remote.predict(self.model.transform(rows.matrix()), request_id)
        return self._predict_here(rows)

    async def _predict_here(self, rows: Rows) -> Prediction:
        started = time.perf_counter()
        result = self.model.predict(rows.matrix())
        self.metrics.observe_batch(len(rows), time.perf_counter() - started)
        return result


class JSONAnswer(Response):
    """A JSON response whose header list is written out directly: Starlette's general
    constructor lower-cases, encodes and scans every header of every response."""

    media_type = JSON

    def __init__(self, body: bytes, status: int, request_id: str, version: bytes) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            (b"x-request-id", request_id.encode("latin-1")),
            (b"x-mlpatterns-version", version),
        ]


def json_response(state: ServerState, request_id: str, body: Any, status: int = 200) -> Response:
    return JSONAnswer(orjson.dumps(body), status, request_id, state.model.version_header)


def header(request: Request, name: bytes) -> str | None:
    """One request header (`name` in lower case, as ASGI servers give them): a scan of
    the raw list, without building Starlette's Headers mapping on the hot path."""
    for key, value in request.scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def request_id_of(request: Request) -> str:
    return web.request_id(header(request, b"x-request-id"))


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with a 413 as soon as it is known to pass `limit`."""
    try:
        return await web.read_body(request.scope, request.receive, limit)
    except web.BodyTooLarge as error:
        raise ClientError(413, str(error)) from None


Handler = Callable[[Request, ServerState, str], Awaitable[Response]]


def endpoint(
    name: str, handler: Handler, state: ServerState
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with request id, metrics and the 4xx/5xx error contract."""

    async def endpoint(request: Request) -> Response:
        request_id = request_id_of(request)
        started = time.perf_counter()
        state.metrics.started()
        try:
            response = await handler(request, state, request_id)
        except AnswerError as error:  # a client's mistake (4xx) or an upstream failure
            response = json_response(state, request_id, {"error": error.message}, error.status)
            if error.retry_after is not None:
                response.raw_headers.append((b"retry-after", str(error.retry_after).encode()))
        except web.ClientGone:  # nothing predicted or logged; counted as 499 (nginx's "closed")
            message = "the client closed the connection before sending its whole body"
            response = json_response(state, request_id, {"error": message}, CLIENT_CLOSED)
        except Exception:  # a fault of ours, never the client's: the detail goes to the log
            fields = request_fields(request_id)
            log.exception("request %s to %s failed", request_id, name, extra=fields)
            message = (
                f"internal error; the server's log has the detail under request id {request_id}"
            )
            response = json_response(state, request_id, {"error": message}, 500)
        finally:
            state.metrics.finished()
        state.metrics.observe_request(name, response.status_code, time.perf_counter() - started)
        return response

    return endpoint


def _check_model(state: ServerState, request: Request) -> None:
    name = request.path_params.get("model_name")
    if name is not None and name != state.model.name:
        raise ClientError(404, f"no model {name!r} here; this server serves {state.model.name!r}")
    version = request.path_params.get("model_version")
    if version is not None and version not in (
        state.model.version,
        state.model.metadata.core_version,
    ):
        raise ClientError(
            404, f"model {name} has no version {version!r} here; it serves {state.model.version}"
        )


def is_shadow_copy(request: Request) -> bool:
    """A gateway's or Envoy's mirrored request: its Host ends in `-shadow`."""
    return (header(request, b"host") or "").split(":", 1)[0].endswith("-shadow")


async def _run(state: ServerState, request: Request, request_id: str, rows: Rows) -> Prediction:
    started = time.perf_counter()
    result = await state.predict(rows, request_id)
    if not result.finite:
        raise ClientError(
            422,
            "the model cannot compute these inputs (non-finite results); values of this "
            "magnitude are outside its range",
        )
    state.metrics.count_classes(result.labels)
    state.metrics.watch(rows, result.labels)
    if state.prediction_log is not None:
        state.prediction_log.submit(
            prediction_record(
                request_id=request_id,
                service=state.service,
                version=state.config.version,
                model=state.model.version,
                digest=state.model.sha256,
                inputs=rows.nested() if state.config.log_inputs else None,
                outputs={"labels": result.labels, "probabilities": result.probabilities},
                latency=time.perf_counter() - started,
                shadow=is_shadow_copy(request),
            )
        )
    return result


async def predict(request: Request, state: ServerState, request_id: str) -> Response:
    rows = simple_request(
        await read_body(request, state.config.max_body_bytes), state.model.n_features
    )
    result = await _run(state, request, request_id, rows)
    return json_response(
        state,
        request_id,
        {"probabilities": result.probabilities, "classes": state.model.labels},
    )


async def predict_label(request: Request, state: ServerState, request_id: str) -> Response:
    rows = simple_request(
        await read_body(request, state.config.max_body_bytes), state.model.n_features
    )
    result = await _run(state, request, request_id, rows)
    return json_response(state, request_id, {"labels": result.labels})


async def infer(request: Request, state: ServerState, request_id: str) -> Response:
    _check_model(state, request)
    rows, given_id = v2_request(
        await read_body(request, state.config.max_body_bytes), state.model.n_features
    )
    result = await _run(state, request, request_id, rows)
    probabilities = result.probabilities
    n, k = len(probabilities), len(probabilities[0])
    flat = probabilities[0] if n == 1 else list(chain.from_iterable(probabilities))  # row-major
    return json_response(
        state,
        request_id,
        {
            "model_name": state.model.name,
            "model_version": state.model.version,
            "id": given_id or request_id,
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [n], "data": result.labels},
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [n, k],
                    "data": flat,
                },
            ],
        },
    )


async def model_metadata(request: Request, state: ServerState, request_id: str) -> Response:
    _check_model(state, request)
    n, k = state.model.n_features, len(state.model.labels)
    return json_response(
        state,
        request_id,
        {
            "name": state.model.name,
            "versions": [state.model.version],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": state.model.input_name, "datatype": "FP32", "shape": [-1, n]}],
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
            ],
        },
    )


async def _is_ready(state: ServerState) -> bool:
    # a preprocess server is only as ready as the prediction server it depends on
    return state.ready and (state.remote is None or await state.remote.ready())


async def model_ready(request: Request, state: ServerState, request_id: str) -> Response:
    _check_model(state, request)
    ready = await _is_ready(state)
    return json_response(
        state, request_id, {"name": state.model.name, "ready": ready}, 200 if ready else 503
    )


async def live(request: Request, state: ServerState, request_id: str) -> Response:
    return json_response(state, request_id, {"live": True})


async def ready(request: Request, state: ServerState, request_id: str) -> Response:
    is_ready = await _is_ready(state)
    return json_response(state, request_id, {"ready": is_ready}, 200 if is_ready else 503)


async def server_metadata(request: Request, state: ServerState, request_id: str) -> Response:
    from mlpatterns import __version__

    return json_response(
        state, request_id, {"name": "mlpatterns", "version": __version__, "extensions": []}
    )


async def metadata(request: Request, state: ServerState, request_id: str) -> Response:
    meta = state.model.metadata
    return json_response(
        state,
        request_id,
        {
            "name": meta.name,
            "version": meta.version,
            "digest": state.model.sha256,
            "signature": meta.signature.model_dump(),
            "labels": meta.labels,
            "feature_names": meta.feature_names,
            "service": state.service,
        },
    )


async def health(request: Request, state: ServerState, request_id: str) -> Response:
    return json_response(
        state,
        request_id,
        {"status": "ok" if state.ready else "loading"},
        200 if state.ready else 503,
    )


async def openapi(request: Request, state: ServerState, request_id: str) -> Response:
    from mlpatterns.serving.openapi import openapi_document

    document = openapi_document(state.model.name, state.model.n_features, state.model.version)
    return json_response(state, request_id, document)


async def metrics(request: Request, state: ServerState, request_id: str) -> Response:
    return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")


Endpoints = list[tuple[str, Handler, str]]  # path, handler, method


def routes(state: ServerState, endpoints: Endpoints) -> list[Route]:
    """Starlette routes, each handler wrapped by `endpoint` and bound to the state."""
    return [
        Route(path, endpoint(path, handler, state), methods=[method])
        for path, handler, method in endpoints
    ]


def _routes(state: ServerState) -> list[Route]:
    infer_path = "/v2/models/{model_name}/infer"
    endpoints: Endpoints = [
        # the prediction routes first: Starlette tries routes in order, every request
        (infer_path, infer, "POST"),
        ("/predict", predict, "POST"),
        ("/predict/label", predict_label, "POST"),
        ("/v2/models/{model_name}/versions/{model_version}/infer", infer, "POST"),
        ("/v2/health/live", live, "GET"),
        ("/v2/health/ready", ready, "GET"),
        ("/v2", server_metadata, "GET"),
        ("/v2/models/{model_name}", model_metadata, "GET"),
        ("/v2/models/{model_name}/versions/{model_version}", model_metadata, "GET"),
        ("/v2/models/{model_name}/ready", model_ready, "GET"),
        ("/v2/models/{model_name}/versions/{model_version}/ready", model_ready, "GET"),
        ("/metadata", metadata, "GET"),
        ("/health", health, "GET"),
        ("/metrics", metrics, "GET"),
        ("/openapi.json", openapi, "GET"),
    ]
    # before them all, this model's own infer path as a plain string: most requests take
    # it, and it matches without extracting and converting a path parameter
    own = f"/v2/models/{state.model.name}/infer"  # a registry name: [a-z0-9-], no braces
    return [
        Route(own, endpoint(infer_path, infer, state), methods=["POST"]),
        *routes(state, endpoints),
    ]


async def http_error(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    hint = {404: "see /v2 and /metadata for the routes this server has", 405: "wrong method"}
    message = f"{request.method} {request.url.path}: {hint.get(status, 'error')}"
    state: ServerState = request.app.state.server
    response = json_response(state, request_id_of(request), {"error": message}, status)
    if isinstance(error, HTTPException) and error.headers:  # e.g. Allow on a 405 (RFC 9110)
        response.headers.update(error.headers)
    return response


def create_app(state: ServerState) -> Starlette:
    """The application for a loaded model; ready once started, flushed on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if state.config.batching and state.remote is None:
            state.batcher = MicroBatcher(
                state.model.predict,
                max_rows=state.config.max_batch_rows,
                max_wait=state.config.max_batch_wait,
                on_batch=state.metrics.observe_batch,
                inference_thread=state.config.inference_thread,
            )
        calm_garbage_collector()
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            if state.batcher is not None:
                state.batcher.close()
            if state.prediction_log is not None:
                state.prediction_log.close()
            if state.remote is not None:
                await state.remote.close()

    app = Starlette(
        routes=_routes(state), lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.state.server = state
    state.metrics.describe_model(state.model.name, state.model.version, state.model.sha256)
    return app
