"""The Open Inference Protocol v2 over HTTP (`/v2/...`): health, server and model
metadata, inference with the binary tensor data extension (`serving.oip`), and the
extensions Triton's and KServe's clients call: the model's configuration, its
statistics and the model repository's index. This server serves the one model it was
started with, so the repository's load and unload are refused with the reason.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mlpatterns.serving.core import (
    Endpoints,
    JSONAnswer,
    ServerState,
    check_model,
    header,
    is_ready,
    is_shadow_copy,
    json_response,
    read_body,
    run_prediction,
)
from mlpatterns.serving.inputs import ClientError
from mlpatterns.serving.oip import (
    BINARY_CONTENT_TYPE,
    EXTENSIONS,
    HEADER_LENGTH,
    INPUT_DATATYPE,
    encode_response,
    read_request,
)

__all__ = [
    "INFER_PATH",
    "V2_ENDPOINTS",
    "config_of",
    "fixed_model",
    "infer",
    "live",
    "metadata_of",
    "model_config",
    "model_metadata",
    "model_ready",
    "model_statistics",
    "ready",
    "repository_index",
    "repository_refusal",
    "server_metadata",
]

INFER_PATH = "/v2/models/{model_name}/infer"


async def infer(request: Request, state: ServerState, request_id: str) -> Response:
    check_model(state, request)
    body = await read_body(request, state.config.max_body_bytes)
    asked = read_request(body, header(request, HEADER_LENGTH), state.model_input)
    result = await run_prediction(state, asked.rows, request_id, shadow=is_shadow_copy(request))
    model = state.model
    answer, json_size = encode_response(asked, result, model.name, model.version, request_id)
    if json_size is None:
        return JSONAnswer(answer, 200, request_id, model.version_header)
    response = JSONAnswer(answer, 200, request_id, model.version_header, BINARY_CONTENT_TYPE)
    response.raw_headers.append((HEADER_LENGTH, str(json_size).encode()))
    return response


def metadata_of(state: ServerState) -> dict[str, object]:
    """The model's metadata as the protocol has it (HTTP's JSON, gRPC's message)."""
    model = state.model
    n, k = model.n_features, len(model.labels)
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": model.input_name, "datatype": INPUT_DATATYPE, "shape": [-1, n]}],
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
        ],
    }


async def model_metadata(request: Request, state: ServerState, request_id: str) -> Response:
    check_model(state, request)
    return json_response(state, request_id, metadata_of(state))


def config_of(state: ServerState) -> dict[str, object]:
    """The model's configuration in Triton's form (`model_config.proto`, as JSON)."""
    model = state.model
    n, k = model.n_features, len(model.labels)
    return {
        "name": model.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": 0,  # the batch is the first dimension of each shape below
        "input": [{"name": model.input_name, "data_type": "TYPE_FP32", "dims": [-1, n]}],
        "output": [
            {"name": "label", "data_type": "TYPE_STRING", "dims": [-1]},
            {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1, k]},
        ],
        "version_policy": {"specific": {"versions": [_numeric_version(model.version)]}},
    }


async def model_config(request: Request, state: ServerState, request_id: str) -> Response:
    check_model(state, request)
    return json_response(state, request_id, config_of(state))


async def model_statistics(request: Request, state: ServerState, request_id: str) -> Response:
    check_model(state, request)
    stats = state.metrics.statistics(state.model.name, state.model.version)
    return json_response(state, request_id, {"model_stats": [stats]})


async def repository_index(request: Request, state: ServerState, request_id: str) -> Response:
    model = state.model
    state_name = "READY" if await is_ready(state) else "UNAVAILABLE"
    return json_response(
        state, request_id, [{"name": model.name, "version": model.version, "state": state_name}]
    )


def fixed_model(state: ServerState) -> str:
    """Why the repository's load and unload are refused."""
    return (
        f"this server serves {state.model.name!r} version {state.model.version}, fixed when "
        "it started; to serve another model or version, change the ModelService "
        "(or start a server with it)"
    )


async def repository_refusal(request: Request, state: ServerState, request_id: str) -> Response:
    raise ClientError(400, fixed_model(state))


async def model_ready(request: Request, state: ServerState, request_id: str) -> Response:
    check_model(state, request)
    ready = await is_ready(state)
    return json_response(
        state, request_id, {"name": state.model.name, "ready": ready}, 200 if ready else 503
    )


async def live(request: Request, state: ServerState, request_id: str) -> Response:
    return json_response(state, request_id, {"live": True})


async def ready(request: Request, state: ServerState, request_id: str) -> Response:
    answer = await is_ready(state)
    return json_response(state, request_id, {"ready": answer}, 200 if answer else 503)


async def server_metadata(request: Request, state: ServerState, request_id: str) -> Response:
    from mlpatterns import __version__

    return json_response(
        state,
        request_id,
        {"name": "mlpatterns", "version": __version__, "extensions": list(EXTENSIONS)},
    )


def _numeric_version(version: str) -> int:
    """Triton's version policy numbers versions; a registry version is one, or is 0 here."""
    return int(version) if version.isdigit() else 0


V2_ENDPOINTS: Endpoints = [  # path, handler, method; the infer routes first (most requests)
    (INFER_PATH, infer, "POST"),
    ("/v2/models/{model_name}/versions/{model_version}/infer", infer, "POST"),
    ("/v2/health/live", live, "GET"),
    ("/v2/health/ready", ready, "GET"),
    ("/v2", server_metadata, "GET"),
    ("/v2/models/stats", model_statistics, "GET"),  # before {model_name} takes "stats"
    ("/v2/models/{model_name}", model_metadata, "GET"),
    ("/v2/models/{model_name}/versions/{model_version}", model_metadata, "GET"),
    ("/v2/models/{model_name}/ready", model_ready, "GET"),
    ("/v2/models/{model_name}/versions/{model_version}/ready", model_ready, "GET"),
    ("/v2/models/{model_name}/config", model_config, "GET"),
    ("/v2/models/{model_name}/versions/{model_version}/config", model_config, "GET"),
    ("/v2/models/{model_name}/stats", model_statistics, "GET"),
    ("/v2/models/{model_name}/versions/{model_version}/stats", model_statistics, "GET"),
    ("/v2/repository/index", repository_index, "POST"),
    ("/v2/repository/models/{model_name}/load", repository_refusal, "POST"),
    ("/v2/repository/models/{model_name}/unload", repository_refusal, "POST"),
]
