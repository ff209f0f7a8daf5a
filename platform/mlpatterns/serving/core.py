"""What every endpoint of the model server shares: its configuration and state, the
response type, the request helpers, and the wrapper that gives each handler its
request id, metrics and error contract (a client's mistake is a 4xx with a JSON
`{"error": ...}` that says what was wrong; only the server's own faults are 5xx, each
logged with its traceback under the request id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
import redis.asyncio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlpatterns import web
from mlpatterns.logsetup import log_access, request_fields
from mlpatterns.logstreams import RecordLog, prediction_record
from mlpatterns.serving.batching import MicroBatcher
from mlpatterns.serving.cache import Key, PredictionCache, SharedPredictionCache
from mlpatterns.serving.features import DataCache
from mlpatterns.serving.inputs import AnswerError, ClientError, Rows
from mlpatterns.serving.metrics import ServerMetrics
from mlpatterns.serving.model import LoadedModel, Prediction
from mlpatterns.serving.oip import ModelInput
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
    "check_model",
    "check_named",
    "endpoint",
    "header",
    "is_ready",
    "is_shadow_copy",
    "json_response",
    "log",
    "read_body",
    "request_id_of",
    "routes",
    "run_prediction",
]

log = logging.getLogger("mlpatterns.serving")
DEFAULT_MAX_BODY_BYTES = web.WebLimits.max_body_bytes
CLIENT_CLOSED = 499
SHARED_CACHE_TIMEOUT = 0.5  # a stalled Redis costs a request this at most: then a miss
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
    grpc_address: str = ""  # host:port to serve the protocol over gRPC on too; "" for none
    max_grpc_calls: int = 1024  # beyond: RESOURCE_EXHAUSTED at once, not a queue
    access_log: bool = False  # one log line per request
    cache_entries: int = 0  # answers the prediction cache keeps; 0: no cache
    cache_ttl: float = 300.0  # seconds an answer stays in the cache
    cache_redis_url: str = ""  # set: the cache is shared, in this Redis
    cache_redis_password: str | None = field(default=None, repr=False)


@dataclass
class ServerState:
    model: LoadedModel
    config: ServerConfig
    metrics: ServerMetrics
    prediction_log: RecordLog | None = None
    batcher: MicroBatcher | None = None
    remote: RemotePredictor | None = None  # set: this is a preprocess server
    ready: bool = False
    model_input: ModelInput = field(init=False)
    cache: PredictionCache | None = field(init=False)
    shared_cache: SharedPredictionCache | None = field(init=False)
    data_cache: DataCache | None = None  # set: requests may name entities (`{"ids": ...}`)

    @property
    def service(self) -> str:
        return self.config.service or self.model.name

    def __post_init__(self) -> None:
        self.model_input = ModelInput(self.model.input_name, self.model.n_features)
        config = self.config
        # a preprocess server is not cached: its predictor's model may change under it
        cached = config.cache_entries > 0 and self.remote is None
        self.cache, self.shared_cache = None, None
        if cached and not config.cache_redis_url:
            self.cache = PredictionCache(config.cache_entries, config.cache_ttl)
        elif cached:
            client = redis.asyncio.Redis.from_url(
                config.cache_redis_url,
                password=config.cache_redis_password,
                socket_timeout=SHARED_CACHE_TIMEOUT,
                socket_connect_timeout=SHARED_CACHE_TIMEOUT,
                max_connections=64,
            )
            self.shared_cache = SharedPredictionCache(
                client, self.service, config.cache_entries, config.cache_ttl
            )

    def predict(self, rows: Rows, request_id: str) -> Awaitable[Prediction]:
        cache = self.cache
        if cache is None:
            if self.shared_cache is not None:
                return self._predict_shared(self.shared_cache, rows, request_id)
            return self._predict(rows, request_id)
        key = cache.key(self.model.sha256, rows)
        cached = cache.get(key)
        self.metrics.count_cache_lookup(cached is not None)
        if cached is not None:
            answered: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
            answered.set_result(cached)
            return answered
        pending = asyncio.ensure_future(self._predict(rows, request_id))
        pending.add_done_callback(partial(_keep, cache, key))
        return pending

    async def _predict_shared(
        self, cache: SharedPredictionCache, rows: Rows, request_id: str
    ) -> Prediction:
        key = cache.key(self.model.sha256, rows)
        cached = await cache.get(key)
        self.metrics.count_cache_lookup(cached is not None)
        if cached is not None:
            return cached
        prediction = await self._predict(rows, request_id)
        await cache.put(key, prediction)
        return prediction

    def _predict(self, rows: Rows, request_id: str) -> Awaitable[Prediction]:
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
    """A JSON response (or an infer response with raw outputs after its JSON) whose
    header list is written out directly: Starlette's general constructor lower-cases,
    encodes and scans every header of every response."""

    media_type = JSON

    def __init__(
        self,
        body: bytes,
        status: int,
        request_id: str,
        version: bytes,
        content_type: bytes = b"application/json",
    ) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", content_type),
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
        elapsed = time.perf_counter() - started
        state.metrics.observe_request(name, response.status_code, elapsed)
        if state.config.access_log:
            scope = request.scope
            log_access(request_id, scope["method"], scope["path"], response.status_code, elapsed)
        return response

    return endpoint


def check_model(state: ServerState, request: Request) -> None:
    """404 unless the path's model name and version (where it has them) are this server's."""
    check_named(
        state, request.path_params.get("model_name"), request.path_params.get("model_version")
    )


def check_named(state: ServerState, name: str | None, version: str | None) -> None:
    """404 unless `name` (None: not given) and `version` (None or empty: any) are this
    server's model and version, its own or its core version."""
    model = state.model
    if name is not None and name != model.name:
        raise ClientError(404, f"no model {name!r} here; this server serves {model.name!r}")
    if version and version not in (model.version, model.metadata.core_version):
        raise ClientError(
            404, f"model {name} has no version {version!r} here; it serves {model.version}"
        )


def is_shadow_copy(request: Request) -> bool:
    """A gateway's or Envoy's mirrored request: its Host ends in `-shadow`."""
    return (header(request, b"host") or "").split(":", 1)[0].endswith("-shadow")


def _keep(cache: PredictionCache, key: Key, done: asyncio.Future[Prediction]) -> None:
    if not done.cancelled() and done.exception() is None:
        cache.put(key, done.result())


async def is_ready(state: ServerState) -> bool:
    # a preprocess server is only as ready as the prediction server it depends on
    return state.ready and (state.remote is None or await state.remote.ready())


async def run_prediction(
    state: ServerState, rows: Rows, request_id: str, *, shadow: bool = False
) -> Prediction:
    """The model's answer for `rows`, counted, watched for drift and logged; `shadow`
    marks a mirrored copy in the log."""
    started = time.perf_counter()
    try:
        result = await state.predict(rows, request_id)
    except BaseException:
        state.metrics.observe_inference(False, time.perf_counter() - started)
        raise
    elapsed = time.perf_counter() - started
    state.metrics.observe_inference(result.finite, elapsed)
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
                latency=elapsed,
                shadow=shadow,
            )
        )
    return result


Endpoints = list[tuple[str, Handler, str]]  # path, handler, method


def routes(state: ServerState, endpoints: Endpoints) -> list[Route]:
    """Starlette routes, each handler wrapped by `endpoint` and bound to the state."""
    return [
        Route(path, endpoint(path, handler, state), methods=[method])
        for path, handler, method in endpoints
    ]
