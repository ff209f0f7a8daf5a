"""The model server's HTTP application (Starlette).

Speaks the Open Inference Protocol v2 (`/v2/...`, `serving.v2`), KServe's v1 protocol
(`/v1/...`, `serving.kserve_v1`), Seldon's (`/api/v1.0/...`, `serving.seldon_protocol`)
and the catalog's simple API (`/predict`, `/predict/label`, `/metadata`, `/health`),
plus `/metrics`. Every response carries `x-request-id` (echoed or generated) and
`x-mlpatterns-version`; the error contract is `serving.core`'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlpatterns.process import calm_garbage_collector
from mlpatterns.serving.batching import MicroBatcher
from mlpatterns.serving.core import (
    Endpoints,
    ServerConfig,
    ServerState,
    endpoint,
    is_shadow_copy,
    json_response,
    read_body,
    request_id_of,
    routes,
    run_prediction,
)
from mlpatterns.serving.features import entity_ids
from mlpatterns.serving.inputs import ClientError, Rows, parse_json, simple_fast, simple_parsed
from mlpatterns.serving.kserve_v1 import V1_ENDPOINTS
from mlpatterns.serving.seldon_protocol import SELDON_ENDPOINTS
from mlpatterns.serving.v2 import INFER_PATH, V2_ENDPOINTS, infer

__all__ = [
    "GRPC_GRACE_SECONDS",
    "ServerConfig",
    "ServerState",
    "create_app",
    "health",
    "http_error",
    "metadata",
    "metrics",
    "openapi",
    "predict",
    "predict_label",
    "simple_rows",
]


async def simple_rows(request: Request, state: ServerState, request_id: str) -> Rows:
    """The simple API's rows: `{"data": [[...], ...]}`, or with a data cache
    `{"ids": [...]}`, each entity's features read through it."""
    body = await read_body(request, state.config.max_body_bytes)
    rows = simple_fast(body, state.model.n_features)
    if rows is not None:
        return rows
    parsed = parse_json(body)
    if isinstance(parsed, dict) and "ids" in parsed and "data" not in parsed:
        if state.data_cache is None:
            raise ClientError(
                422,
                "this version has no feature source (a ModelService version's `features`): "
                'send the features themselves, {"data": [[...], ...]}',
            )
        return await state.data_cache.rows(entity_ids(parsed["ids"]), request_id)
    return simple_parsed(parsed, state.model.n_features)


async def predict(request: Request, state: ServerState, request_id: str) -> Response:
    rows = await simple_rows(request, state, request_id)
    result = await run_prediction(state, rows, request_id, shadow=is_shadow_copy(request))
    return json_response(
        state,
        request_id,
        {"probabilities": result.probabilities, "classes": state.model.labels},
    )


async def predict_label(request: Request, state: ServerState, request_id: str) -> Response:
    rows = await simple_rows(request, state, request_id)
    result = await run_prediction(state, rows, request_id, shadow=is_shadow_copy(request))
    return json_response(state, request_id, {"labels": result.labels})


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

    model = state.model
    document = openapi_document(model.name, model.n_features, model.version, model.input_name)
    return json_response(state, request_id, document)


async def metrics(request: Request, state: ServerState, request_id: str) -> Response:
    return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")


GRPC_GRACE_SECONDS = 5.0  # calls in flight at shutdown get this long to finish


def _routes(state: ServerState) -> list[Route]:
    endpoints: Endpoints = [
        # the prediction routes first: Starlette tries routes in order, every request
        *V2_ENDPOINTS[:1],
        ("/predict", predict, "POST"),
        ("/predict/label", predict_label, "POST"),
        *V2_ENDPOINTS[1:],
        *V1_ENDPOINTS,
        *SELDON_ENDPOINTS,
        ("/metadata", metadata, "GET"),
        ("/health", health, "GET"),
        ("/metrics", metrics, "GET"),
        ("/openapi.json", openapi, "GET"),
    ]
    # before them all, this model's own infer path as a plain string: most requests take
    # it, and it matches without extracting and converting a path parameter
    own = f"/v2/models/{state.model.name}/infer"  # a registry name: [a-z0-9-], no braces
    return [
        Route(own, endpoint(INFER_PATH, infer, state), methods=["POST"]),
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
        grpc_server = None
        if state.config.grpc_address:
            from mlpatterns.serving.grpc_service import start_grpc_server

            grpc_server = await start_grpc_server(state, state.config.grpc_address)
        calm_garbage_collector()
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            if grpc_server is not None:
                await grpc_server.stop(grace=GRPC_GRACE_SECONDS)
            if state.batcher is not None:
                state.batcher.close()
            if state.prediction_log is not None:
                state.prediction_log.close()
            if state.remote is not None:
                await state.remote.close()
            if state.data_cache is not None:
                state.data_cache.close()

    app = Starlette(
        routes=_routes(state), lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.state.server = state
    state.metrics.describe_model(state.model.name, state.model.version, state.model.sha256)
    return app
