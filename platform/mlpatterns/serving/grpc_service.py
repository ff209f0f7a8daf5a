"""The Open Inference Protocol v2 over gRPC: `inference.GRPCInferenceService`, with the
protocol's messages as Triton's client library ships them generated.

It runs on its own port in the HTTP server's event loop, so both share the model, the
micro-batcher, the metrics and the prediction log. A request is turned into the JSON
form's values and read by `serving.oip`, so both protocols check the same things and
say the same thing when a request is wrong; outputs are always raw bytes
(`raw_output_contents`), as Triton answers. A client's mistake is an error status
(INVALID_ARGUMENT, NOT_FOUND, ...) with that message; only the server's own faults are
INTERNAL, each logged with its traceback under the request id. The methods of the
service that this server has no use for (shared memory, tracing, streaming) answer
UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as config_pb
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as rpc

from mlpatterns import web
from mlpatterns.logsetup import log_access, request_fields
from mlpatterns.serving.core import ServerState, check_named, is_ready, run_prediction
from mlpatterns.serving.inputs import AnswerError, ClientError
from mlpatterns.serving.model import Prediction
from mlpatterns.serving.oip import EXTENSIONS, raw_output, read_parsed
from mlpatterns.serving.v2 import config_of, fixed_model, metadata_of

__all__ = ["GRPC_CODES", "InferenceService", "start_grpc_server"]

log = logging.getLogger("mlpatterns.serving")
ENDPOINT = "grpc:ModelInfer"  # how the metrics name the gRPC inference

GRPC_CODES = {  # an HTTP status of ours -> the gRPC status that means the same
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _parameters(given: Any) -> dict[str, Any]:
    """A protobuf map of InferParameter as plain values."""
    values = {}
    for name, parameter in given.items():
        kind = parameter.WhichOneof("parameter_choice")
        values[name] = getattr(parameter, kind) if kind is not None else None
    return values


def as_parsed(request: pb.ModelInferRequest) -> tuple[dict[str, Any], bytes]:
    """A gRPC infer request as the JSON form's values, and its raw input bytes."""
    tensors = []
    for index, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
            "parameters": _parameters(tensor.parameters),
        }
        if index < len(request.raw_input_contents):
            entry["parameters"]["binary_data_size"] = len(request.raw_input_contents[index])
        else:
            entry["data"] = list(tensor.contents.fp32_contents)
        tensors.append(entry)
    parsed: dict[str, Any] = {
        "inputs": tensors,
        "parameters": _parameters(request.parameters),
    }
    if request.id:
        parsed["id"] = request.id
    if request.outputs:
        parsed["outputs"] = [
            {"name": o.name, "parameters": _parameters(o.parameters)} for o in request.outputs
        ]
    binary = request.raw_input_contents[0] if request.raw_input_contents else b""
    return parsed, binary


class InferenceService(rpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The protocol's methods over one server's state."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await is_ready(self.state))

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        from mlpatterns import __version__

        return pb.ServerMetadataResponse(
            name="mlpatterns", version=__version__, extensions=list(EXTENSIONS)
        )

    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        await self._check_model(request.name, request.version, context)
        return pb.ModelReadyResponse(ready=await is_ready(self.state))

    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        await self._check_model(request.name, request.version, context)
        return json_format.ParseDict(metadata_of(self.state), pb.ModelMetadataResponse())

    async def ModelConfig(self, request: Any, context: Any) -> pb.ModelConfigResponse:
        await self._check_model(request.name, request.version, context)
        config = json_format.ParseDict(config_of(self.state), config_pb.ModelConfig())
        return pb.ModelConfigResponse(config=config)

    async def ModelStatistics(self, request: Any, context: Any) -> pb.ModelStatisticsResponse:
        if request.name:
            await self._check_model(request.name, request.version, context)
        model = self.state.model
        stats = self.state.metrics.statistics(model.name, model.version)
        return json_format.ParseDict({"model_stats": [stats]}, pb.ModelStatisticsResponse())

    async def RepositoryIndex(self, request: Any, context: Any) -> pb.RepositoryIndexResponse:
        model = self.state.model
        state = "READY" if await is_ready(self.state) else "UNAVAILABLE"
        index = pb.RepositoryIndexResponse.ModelIndex(
            name=model.name, version=model.version, state=state
        )
        return pb.RepositoryIndexResponse(models=[index])

    async def RepositoryModelLoad(self, request: Any, context: Any) -> None:
        await self._refuse_repository_change(context)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> None:
        await self._refuse_repository_change(context)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelInferResponse:
        state = self.state
        request_id = web.request_id(request.id or _metadata(context, "x-request-id"))
        started = time.perf_counter()
        state.metrics.started()
        status = 200
        try:
            check_named(state, request.model_name, request.model_version)
            parsed, binary = as_parsed(request)
            asked = read_parsed(parsed, binary, state.model_input)
            result = await run_prediction(state, asked.rows, request_id)
            return _response(state, asked.outputs, asked.id or request_id, result)
        except AnswerError as error:
            status = error.status
            code = GRPC_CODES.get(error.status, grpc.StatusCode.INTERNAL)
            await context.abort(code, error.message)
            raise  # not reached: abort raises
        except Exception:
            status = 500
            log.exception(
                "request %s to %s failed", request_id, ENDPOINT, extra=request_fields(request_id)
            )
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"internal error; the server's log has the detail under request id {request_id}",
            )
            raise  # not reached: abort raises
        finally:
            state.metrics.finished()
            elapsed = time.perf_counter() - started
            state.metrics.observe_request(ENDPOINT, status, elapsed)
            if state.config.access_log:
                log_access(request_id, "gRPC", "ModelInfer", status, elapsed)

    async def _check_model(self, name: str, version: str, context: Any) -> None:
        """Abort with NOT_FOUND unless the request names this server's model."""
        try:
            check_named(self.state, name, version)
        except ClientError as error:
            await context.abort(GRPC_CODES[error.status], error.message)

    async def _refuse_repository_change(self, context: Any) -> None:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, fixed_model(self.state))


def _metadata(context: Any, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return str(item.value)
    return None


def _response(
    state: ServerState, outputs: tuple[tuple[str, bool], ...], request_id: str, result: Prediction
) -> pb.ModelInferResponse:
    model = state.model
    response = pb.ModelInferResponse(
        model_name=model.name, model_version=model.version, id=request_id
    )
    for name, _ in outputs:
        datatype, shape, raw = raw_output(name, result)
        response.outputs.add(name=name, datatype=datatype, shape=shape)
        response.raw_output_contents.append(raw)
    return response


async def start_grpc_server(state: ServerState, address: str) -> grpc.aio.Server:
    """Serve the protocol on `address` (host:port) in the running event loop. Several
    worker processes may bind the same port (SO_REUSEPORT, gRPC's default on Linux)."""
    limits = state.config.max_body_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limits),
            ("grpc.max_send_message_length", limits),
            ("grpc.so_reuseport", 1),
        ],
        maximum_concurrent_rpcs=state.config.max_grpc_calls,
    )
    rpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(state), server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    await server.start()
    return server
