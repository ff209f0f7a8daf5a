"""Seldon Core's protocol (v1, the executor's REST API) on the model server.

    POST /api/v1.0/predictions  {"data": {"ndarray": [[...], ...]}}
                                 or {"data": {"tensor": {"shape": [n, f], "values": [...]}}}
        -> {"data": {"names": [class, ...], "ndarray" | "tensor": probabilities},
            "meta": {"requestPath": {model: version}}}
    POST /api/v1.0/feedback     {"request", "response", "reward", "truth"} -> {"meta": {}}
    GET  /health/ping           -> pong
    GET  /health/status         -> {"status": {"code": 200, "status": "SUCCESS"}} (503 until ready)

The answer takes the request's form (ndarray or tensor) and names each column with its
class, as Seldon's scikit-learn server answers `predict_proba`. A feedback's reward
is counted in the server's metrics (`mlpatterns_feedback_reward`); the A/B test's
outcomes go to the gateway's `/feedback`, which knows which version answered.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mlpatterns.serving.core import (
    Endpoints,
    ServerState,
    is_ready,
    is_shadow_copy,
    json_response,
    read_body,
    run_prediction,
)
from mlpatterns.serving.inputs import ClientError, Rows, checked_rows, parse_json

__all__ = ["SELDON_ENDPOINTS", "feedback", "ping", "predictions", "rows_of", "status"]

MAX_FEEDBACK_BYTES = 64 << 10


def rows_of(message: Any, width: int) -> tuple[Rows, str]:
    """A SeldonMessage's rows, and its form ("ndarray" or "tensor")."""
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, dict):
        raise ClientError(
            422,
            'expected a SeldonMessage {"data": {"ndarray": [[...], ...]}} or '
            '{"data": {"tensor": {"shape": [rows, features], "values": [...]}}}',
        )
    if "ndarray" in data:
        return checked_rows(data["ndarray"], width, "data.ndarray"), "ndarray"
    tensor = data.get("tensor")
    if not isinstance(tensor, dict):
        raise ClientError(422, "this model takes data.ndarray or data.tensor, a table of numbers")
    shape, values = tensor.get("shape"), tensor.get("values")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or shape[1] != width
        or not all(type(d) is int and d > 0 for d in shape)
    ):
        raise ClientError(422, f"data.tensor.shape must be [rows, {width}], got {shape!r}")
    if not isinstance(values, list) or len(values) != shape[0] * width:
        raise ClientError(
            422, f"data.tensor.values must hold {shape[0] * width} numbers for shape {shape}"
        )
    nested = [values[i : i + width] for i in range(0, len(values), width)]
    return checked_rows(nested, width, "data.tensor.values"), "tensor"


async def predictions(request: Request, state: ServerState, request_id: str) -> Response:
    message = parse_json(await read_body(request, state.config.max_body_bytes))
    rows, form = rows_of(message, state.model.n_features)
    result = await run_prediction(state, rows, request_id, shadow=is_shadow_copy(request))
    table: dict[str, Any]
    if form == "ndarray":
        table = {"ndarray": result.probabilities}
    else:
        values = [p for row in result.probabilities for p in row]
        table = {"tensor": {"shape": [len(rows), len(state.model.labels)], "values": values}}
    model = state.model
    return json_response(
        state,
        request_id,
        {
            "data": {"names": model.labels, **table},
            "meta": {"requestPath": {model.name: model.version}},
        },
    )


async def feedback(request: Request, state: ServerState, request_id: str) -> Response:
    message = parse_json(await read_body(request, MAX_FEEDBACK_BYTES))
    reward = message.get("reward", 0) if isinstance(message, dict) else None
    if (
        isinstance(reward, bool)
        or not isinstance(reward, (int, float))
        or not math.isfinite(reward)
    ):
        raise ClientError(422, 'expected a Feedback {"request", "response", "reward": <number>}')
    state.metrics.observe_feedback(float(reward))
    return json_response(state, request_id, {"meta": {}})


async def ping(request: Request, state: ServerState, request_id: str) -> Response:
    return Response(b"pong", media_type="text/plain")


async def status(request: Request, state: ServerState, request_id: str) -> Response:
    if await is_ready(state):
        return json_response(state, request_id, {"status": {"code": 200, "status": "SUCCESS"}})
    answer = {"status": {"code": 503, "info": "the model is loading", "status": "FAILURE"}}
    return json_response(state, request_id, answer, 503)


SELDON_ENDPOINTS: Endpoints = [
    ("/api/v1.0/predictions", predictions, "POST"),
    ("/api/v1.0/feedback", feedback, "POST"),
    ("/health/ping", ping, "GET"),
    ("/health/status", status, "GET"),
]
