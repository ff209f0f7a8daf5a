"""KServe's v1 protocol (TensorFlow Serving's REST form) on the model server.

    GET  /                           -> {"status": "alive"}  (KServe's liveness)
    GET  /v1/models                  -> {"models": [name]}
    GET  /v1/models/{name}           -> {"name", "ready"}  (503 until ready)
    POST /v1/models/{name}:predict   {"instances": [[...], ...]} -> {"predictions": [label, ...]}

`inputs` is accepted in place of `instances`, as KServe's own servers accept it. The
predictions are the model's labels, as KServe's scikit-learn server answers `predict`;
the probabilities are the v2 protocol's `probabilities` output.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mlpatterns.serving.core import (
    Endpoints,
    ServerState,
    check_model,
    is_shadow_copy,
    json_response,
    read_body,
    run_prediction,
)
from mlpatterns.serving.inputs import ClientError, checked_rows, parse_json
from mlpatterns.serving.v2 import model_ready

__all__ = ["V1_ENDPOINTS", "alive", "list_models", "predict"]


async def alive(request: Request, state: ServerState, request_id: str) -> Response:
    return json_response(state, request_id, {"status": "alive"})


async def list_models(request: Request, state: ServerState, request_id: str) -> Response:
    return json_response(state, request_id, {"models": [state.model.name]})


async def predict(request: Request, state: ServerState, request_id: str) -> Response:
    check_model(state, request)
    parsed = parse_json(await read_body(request, state.config.max_body_bytes))
    if not isinstance(parsed, dict) or ("instances" in parsed) == ("inputs" in parsed):
        raise ClientError(422, 'expected {"instances": [[...], ...]} (or "inputs" in its place)')
    field = "instances" if "instances" in parsed else "inputs"
    rows = checked_rows(parsed[field], state.model.n_features, field)
    result = await run_prediction(state, rows, request_id, shadow=is_shadow_copy(request))
    return json_response(state, request_id, {"predictions": result.labels})


V1_ENDPOINTS: Endpoints = [
    ("/v1/models/{model_name}:predict", predict, "POST"),
    ("/v1/models", list_models, "GET"),
    ("/", alive, "GET"),
    ("/v1/models/{model_name}", model_ready, "GET"),  # the same answer as v2's
]
