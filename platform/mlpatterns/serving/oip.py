"""The Open Inference Protocol v2's infer request and response, with the binary tensor
data extension.

A request is JSON, or (with `Inference-Header-Content-Length`) JSON followed by the
raw bytes of the inputs whose `parameters.binary_data_size` says how many. It is
checked against the model's one input: its name, FP32 and nothing else (the server
converts no value, so none changes on the way), `[rows, features]`. `outputs`
selects among the model's outputs, each as JSON data or raw bytes; the request's
`binary_data_output` sets the default. Every mistake is a ClientError that says what
the model expects.

A JSON-only request in the common form is read by msgspec against typed structures;
whatever that read declines goes to the general path, which accepts the rest and
names exactly what is wrong. What the typed read accepts, the general path accepts
with the same rows and id (a tested property).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import chain
from typing import Annotated, Any

import msgspec
import numpy as np
import orjson

from mlpatterns.serving.inputs import (
    MAX_ROWS,
    ClientError,
    Rows,
    Value,
    checked_rows,
    parse_json,
    plain_numbers,
)
from mlpatterns.serving.model import Prediction

__all__ = [
    "BINARY_CONTENT_TYPE",
    "EXTENSIONS",
    "HEADER_LENGTH",
    "INPUT_DATATYPE",
    "OUTPUTS",
    "InferRequest",
    "ModelInput",
    "encode_response",
    "raw_output",
    "read_fast",
    "read_general",
    "read_parsed",
    "read_request",
]

INPUT_DATATYPE = "FP32"
OUTPUTS = ("label", "probabilities")  # every model's, in this order
HEADER_LENGTH = b"inference-header-content-length"
BINARY_CONTENT_TYPE = b"application/octet-stream"
EXTENSIONS = (
    "binary_tensor_data",
    "model_configuration",
    "model_repository",
    "parameters",
    "statistics",
)
_FP32_BYTES = 4


@dataclass(frozen=True)
class ModelInput:
    """What a request's one input must be."""

    name: str
    n_features: int


@dataclass(frozen=True)
class InferRequest:
    rows: Rows
    id: str | None
    outputs: tuple[tuple[str, bool], ...] = tuple((name, False) for name in OUTPUTS)  # binary?


class _Tensor(msgspec.Struct):
    name: str
    shape: list[Annotated[int, msgspec.Meta(gt=0)]]
    datatype: str
    data: list[Value]  # flat: nested rows take the general path


class _InferBody(msgspec.Struct):
    inputs: list[_Tensor]
    id: str | None = None
    outputs: list[Any] | None = None
    parameters: dict[str, Any] | None = None


_read_infer = msgspec.json.Decoder(_InferBody).decode


def read_request(body: bytes, header_length: str | None, expected: ModelInput) -> InferRequest:
    """An infer request's body (and its `Inference-Header-Content-Length`, if sent)."""
    if header_length is None:
        fast = read_fast(body, expected)
        return fast if fast is not None else read_general(body, b"", expected)
    size = _json_size(header_length, len(body))
    return read_general(body[:size], body[size:], expected)


def read_fast(body: bytes, expected: ModelInput) -> InferRequest | None:
    """The common JSON request (one FP32 input, flat data, no outputs or parameters),
    or None for the general path to read."""
    try:
        request = _read_infer(body)
    except (msgspec.DecodeError, RecursionError):  # msgspec recurses to skip unknown fields
        return None
    if len(request.inputs) != 1 or request.outputs is not None or request.parameters:
        return None
    tensor = request.inputs[0]
    shape, data, width = tensor.shape, tensor.data, expected.n_features
    if (
        tensor.name != expected.name
        or tensor.datatype != INPUT_DATATYPE
        or len(shape) != 2
        or shape[1] != width
        or shape[0] > MAX_ROWS
        or len(data) != shape[0] * width
    ):
        return None
    return InferRequest(Rows(data, width), request.id)


def read_general(head: bytes, binary: bytes, expected: ModelInput) -> InferRequest:
    """Any request: its JSON part, and the raw bytes that follow it."""
    return read_parsed(parse_json(head), binary, expected)


def read_parsed(parsed: Any, binary: bytes, expected: ModelInput) -> InferRequest:
    """A request as the JSON part's values (a gRPC request is turned into the same
    form), and the raw bytes of the input that has `binary_data_size`."""
    if not isinstance(parsed, dict) or not isinstance(parsed.get("inputs"), list):
        raise ClientError(422, 'expected an inference request {"inputs": [{...}]}')
    parameters = _parameters(parsed.get("parameters"), "parameters")
    inputs = parsed["inputs"]
    if len(inputs) != 1:
        raise ClientError(
            422, f"this model takes exactly 1 input, {expected.name!r}; got {len(inputs)}"
        )
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise ClientError(422, "inputs[0] must be an object with name, shape, datatype and data")
    shape = _checked_tensor(tensor, expected)
    size = _parameters(tensor.get("parameters"), "inputs[0].parameters").get("binary_data_size")
    if size is None:
        if len(binary):
            raise ClientError(
                400,
                f"{len(binary)} bytes follow the JSON header, but no input has "
                "parameters.binary_data_size to say they are its data",
            )
        rows = _json_rows(tensor.get("data"), shape, expected.n_features)
    else:
        if "data" in tensor:
            raise ClientError(400, "inputs[0] has both data and binary_data_size: send one")
        rows = _binary_rows(size, binary, shape, expected.n_features)
    request_id = parsed.get("id")
    return InferRequest(
        rows,
        str(request_id) if request_id is not None else None,
        _wanted_outputs(parsed.get("outputs"), parameters),
    )


def encode_response(
    request: InferRequest, prediction: Prediction, model: str, version: str, request_id: str
) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON part when raw outputs follow it."""
    outputs: list[dict[str, Any]] = []
    raw: list[bytes] = []
    for name, binary in request.outputs:
        if binary:
            datatype, shape, data = raw_output(name, prediction)
            raw.append(data)
            size = {"binary_data_size": len(data)}
            tensor = {"name": name, "datatype": datatype, "shape": shape, "parameters": size}
        else:
            tensor = _json_output(name, prediction)
        outputs.append(tensor)
    head = orjson.dumps(
        {
            "model_name": model,
            "model_version": version,
            "id": request.id or request_id,
            "outputs": outputs,
        }
    )
    if not raw:
        return head, None
    return b"".join([head, *raw]), len(head)


def raw_output(name: str, prediction: Prediction) -> tuple[str, list[int], bytes]:
    """One output's datatype, shape and raw bytes (little-endian, row-major; a BYTES
    element is its length in 4 bytes, then itself)."""
    n = len(prediction.labels)
    if name == "label":
        parts = []
        for label in prediction.labels:
            encoded = label.encode()
            parts += [struct.pack("<I", len(encoded)), encoded]
        return "BYTES", [n], b"".join(parts)
    probabilities = np.asarray(prediction.probabilities, dtype="<f4")
    return "FP32", [n, probabilities.shape[1]], probabilities.tobytes()


def _json_output(name: str, prediction: Prediction) -> dict[str, Any]:
    n = len(prediction.labels)
    if name == "label":
        return {"name": name, "datatype": "BYTES", "shape": [n], "data": prediction.labels}
    rows = prediction.probabilities  # row-major, flat
    flat = rows[0] if n == 1 else list(chain.from_iterable(rows))
    return {"name": name, "datatype": "FP32", "shape": [n, len(rows[0])], "data": flat}


def _json_size(header_length: str, body_size: int) -> int:
    try:
        size = int(header_length)
    except ValueError:
        size = -1
    if not 0 < size <= body_size:
        raise ClientError(
            400,
            f"Inference-Header-Content-Length is {header_length!r}; it must be the length "
            f"of the JSON part, a whole number from 1 to the body's {body_size} bytes",
        )
    return size


def _checked_tensor(tensor: dict[str, Any], expected: ModelInput) -> list[int]:
    """The input's shape, once its name, datatype and shape fit the model."""
    name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    width = expected.n_features
    if name != expected.name:
        raise ClientError(
            400,
            f"inputs[0].name is {name!r}; this model's input is {expected.name!r} "
            "(GET /v2/models/<name> lists it)",
        )
    if datatype != INPUT_DATATYPE:
        raise ClientError(
            400,
            f"inputs[0].datatype is {datatype!r}; this model takes {INPUT_DATATYPE} and the "
            "server converts no value, so cast on the client (numpy: .astype(np.float32))",
        )
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(type(d) is int and d > 0 for d in shape)  # a bool's type is bool
    ):
        raise ClientError(422, f"inputs[0].shape must be [rows, {width}], got {shape!r}")
    if shape[1] != width:
        raise ClientError(422, f"inputs[0].shape is {shape}; this model takes {width} features")
    return shape


def _json_rows(data: Any, shape: list[int], width: int) -> Rows:
    if not isinstance(data, list):
        raise ClientError(422, "inputs[0].data must be a list of numbers")
    if data and isinstance(data[0], list):  # nested rows are allowed too
        rows = checked_rows(data, width, "inputs[0].data")
    else:
        if len(data) != shape[0] * width:
            raise ClientError(
                422,
                f"inputs[0].data has {len(data)} values; shape {shape} needs {shape[0] * width}",
            )
        if shape[0] <= MAX_ROWS and plain_numbers(data):  # flat numbers
            rows = Rows(data, width)
        else:  # as rows: checked_rows enforces the row limit and names the value it refuses
            nested = [data[i : i + width] for i in range(0, len(data), width)]
            rows = checked_rows(nested, width, "inputs[0].data")
    if len(rows) != shape[0]:
        raise ClientError(422, f"inputs[0].data has {len(rows)} rows; shape says {shape[0]}")
    return rows


def _binary_rows(size: Any, binary: bytes, shape: list[int], width: int) -> Rows:
    if shape[0] > MAX_ROWS:
        raise ClientError(413, f"inputs[0] has {shape[0]} rows; send at most {MAX_ROWS} at once")
    needed = shape[0] * width * _FP32_BYTES
    if type(size) is not int or size != needed:
        raise ClientError(
            400,
            f"inputs[0]'s raw data is {size!r} bytes (binary_data_size); FP32 data of shape "
            f"{shape} is {needed} bytes",
        )
    if len(binary) != size:
        raise ClientError(
            400,
            f"{len(binary)} bytes of raw data follow; inputs[0]'s binary_data_size says {size}",
        )
    values = np.frombuffer(binary, dtype="<f4")
    finite = np.isfinite(values)
    if not finite.all():
        at = int(np.argmin(finite))
        raise ClientError(
            422, f"inputs[0] row {at // width} value {at % width} is {values[at]}: not finite"
        )
    return Rows(values.tolist(), width)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    """A `parameters` object: names to strings, numbers or booleans (the protocol's)."""
    if value is None:
        return {}
    if isinstance(value, dict) and all(
        isinstance(v, (str, int, float, bool)) for v in value.values()
    ):
        return value
    raise ClientError(400, f"{where} must be an object of string, number or boolean values")


def _wanted_outputs(outputs: Any, parameters: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    default = parameters.get("binary_data_output", False)
    if type(default) is not bool:
        raise ClientError(400, "parameters.binary_data_output must be true or false")
    if outputs is None:
        return tuple((name, default) for name in OUTPUTS)
    if not isinstance(outputs, list) or not outputs:
        raise ClientError(400, "outputs must be a non-empty list of {name, parameters}")
    wanted: list[tuple[str, bool]] = []
    for index, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUTS:
            raise ClientError(
                400,
                f"outputs[{index}].name is {name!r}; this model's outputs are "
                + " and ".join(repr(o) for o in OUTPUTS),
            )
        if any(name == seen for seen, _ in wanted):
            raise ClientError(400, f"outputs[{index}] asks for {name!r} a second time")
        own = _parameters(output.get("parameters"), f"outputs[{index}].parameters")
        if own.get("classification"):
            raise ClientError(
                400,
                "the classification extension is not served: ask for 'probabilities' "
                "(one per class, in the order GET /metadata lists the labels) or 'label'",
            )
        binary = own.get("binary_data", default)
        if type(binary) is not bool:
            raise ClientError(400, f"outputs[{index}].parameters.binary_data must be a boolean")
        wanted.append((name, binary))
    return tuple(wanted)
