"""Turning request bodies into model input, with a 4xx for every client mistake.

Two request forms: the catalog's simple API (`{"data": [[...], ...]}`) and the Open
Inference Protocol v2 infer request (`{"inputs": [{"name", "shape", "datatype",
"data"}]}`). Both become one float32 matrix of the model's width, or a ClientError
that says what is wrong and how to fix it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

MAX_ROWS = 10_000
FLOAT32_MAX = 3.4028234663852886e38  # the model computes in float32
NUMERIC_DATATYPES = {
    "FP32",
    "FP64",
    "FP16",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}


class AnswerError(Exception):
    """A failure answered with its own status and a message, as `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientError(AnswerError):
    """A request the server cannot serve because of the request itself (4xx)."""


def parse_json(body: bytes) -> Any:
    if not body:
        raise ClientError(400, "the request body is empty; send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ClientError(400, f"the request body is not valid JSON: {error}") from None


_NUMBER_TYPES = {int, float}


def _plain_numbers(values: list[Any]) -> bool:
    """Whether every value is an int or float (not a bool), finite and within float32's
    range: the common request, checked with builtins over the whole list at once."""
    return (
        set(map(type, values)) <= _NUMBER_TYPES
        and all(map(math.isfinite, values))
        and max(map(abs, values), default=0) <= FLOAT32_MAX
    )


def _matrix(rows: Any, n_features: int, where: str) -> npt.NDArray[np.float32]:
    if not isinstance(rows, list) or not rows:
        raise ClientError(422, f"{where} must be a non-empty list of rows")
    if len(rows) > MAX_ROWS:
        raise ClientError(413, f"{where} has {len(rows)} rows; send at most {MAX_ROWS} at once")
    if all(type(row) is list and len(row) == n_features and _plain_numbers(row) for row in rows):
        return np.array(rows, dtype=np.float32)
    raise _refusal(rows, n_features, where)


def _refusal(rows: list[Any], n_features: int, where: str) -> ClientError:
    """The error that names the first row or value the fast check refused."""
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n_features:
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            return ClientError(
                422, f"{where}[{index}] must be a list of {n_features} numbers, got {got}"
            )
        for position, value in enumerate(row):
            at = f"{where}[{index}][{position}]"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return ClientError(422, f"{at} is {value!r}: every value must be a number")
            if not math.isfinite(value):
                return ClientError(422, f"{at} is {value}: not finite")
            if abs(value) > FLOAT32_MAX:
                return ClientError(422, f"{at} is too large for float32")
    return ClientError(422, f"{where} must hold rows of {n_features} numbers")


def simple_request(body: bytes, n_features: int) -> npt.NDArray[np.float32]:
    """`{"data": [[f1, f2, ...], ...]}` -> rows."""
    parsed = parse_json(body)
    if not isinstance(parsed, dict) or "data" not in parsed:
        raise ClientError(422, 'expected a JSON object {"data": [[...], ...]}')
    return _matrix(parsed["data"], n_features, "data")


def v2_request(body: bytes, n_features: int) -> tuple[npt.NDArray[np.float32], str | None]:
    """An Open Inference Protocol v2 infer request -> rows, and the request id if given."""
    parsed = parse_json(body)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("inputs"), list):
        raise ClientError(422, 'expected an inference request {"inputs": [{...}]}')
    if len(parsed["inputs"]) != 1:
        raise ClientError(422, f"this model takes exactly 1 input, got {len(parsed['inputs'])}")
    tensor = parsed["inputs"][0]
    if not isinstance(tensor, dict):
        raise ClientError(422, "inputs[0] must be an object with name, shape, datatype and data")
    shape, datatype, data = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
    if not isinstance(datatype, str) or datatype not in NUMERIC_DATATYPES:
        raise ClientError(
            422, f"inputs[0].datatype is {datatype!r}; use a numeric type such as FP32"
        )
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(type(d) is int and d > 0 for d in shape)  # a bool's type is bool
    ):
        raise ClientError(422, f"inputs[0].shape must be [rows, {n_features}], got {shape!r}")
    if shape[1] != n_features:
        raise ClientError(
            422, f"inputs[0].shape is {shape}; this model takes {n_features} features"
        )
    if not isinstance(data, list):
        raise ClientError(422, "inputs[0].data must be a list of numbers")
    if data and isinstance(data[0], list):  # nested rows are allowed too
        matrix = _matrix(data, n_features, "inputs[0].data")
    else:
        if len(data) != shape[0] * shape[1]:
            raise ClientError(
                422,
                f"inputs[0].data has {len(data)} values; shape {shape} needs {shape[0] * shape[1]}",
            )
        if shape[0] <= MAX_ROWS and _plain_numbers(data):  # the common request: flat numbers
            matrix = np.array(data, dtype=np.float32).reshape(shape[0], n_features)
        else:  # as rows: _matrix enforces the row limit and names the value it refuses
            rows = [data[i : i + n_features] for i in range(0, len(data), n_features)]
            matrix = _matrix(rows, n_features, "inputs[0].data")
    if matrix.shape[0] != shape[0]:
        raise ClientError(422, f"inputs[0].data has {matrix.shape[0]} rows; shape says {shape[0]}")
    request_id = parsed.get("id")
    return matrix, str(request_id) if request_id is not None else None
