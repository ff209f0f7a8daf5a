"""Turning request bodies into model input, with a 4xx for every client mistake.

The catalog's simple API (`{"data": [[...], ...]}`) becomes `Rows` of the model's
width, or a ClientError that says what is wrong and how to fix it; the rows' checks
are shared with the Open Inference Protocol's reader (`serving.oip`).

A body is read first by msgspec against typed structures (decoding and checking in
one pass in C, without building the whole JSON tree in Python), and only when that
declines it, by the general path, which names exactly what is wrong with a bad body.
What the typed read accepts, the general path accepts with the same rows (a tested
property): the fast read changes an answer's cost, never the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from mlpatterns.serving.model import FLOAT32_MAX, MAX_ROWS

__all__ = [
    "FLOAT32_MAX",
    "MAX_ROWS",
    "AnswerError",
    "ClientError",
    "Rows",
    "Value",
    "checked_rows",
    "parse_json",
    "plain_numbers",
    "simple_fast",
    "simple_general",
    "simple_parsed",
    "simple_request",
]


class Rows:
    """Checked input rows, still as the request's numbers: a flat list, `width` per row.

    They become a float32 matrix once per model run (`stack`), not once per request:
    under load many requests share a run, and an array per request cost more than
    reading the request did."""

    __slots__ = ("values", "width")

    def __init__(self, values: list[float], width: int) -> None:
        self.values = values
        self.width = width

    @classmethod
    def from_nested(cls, rows: list[list[float]], width: int) -> Rows:
        return cls([value for row in rows for value in row], width)

    def __len__(self) -> int:
        return len(self.values) // self.width

    def matrix(self) -> npt.NDArray[np.float32]:
        return np.array(self.values, dtype=np.float32).reshape(len(self), self.width)

    def nested(self) -> list[list[float]]:
        """Row by row, as sent (for logs and queued jobs)."""
        values, width = self.values, self.width
        return [values[i : i + width] for i in range(0, len(values), width)]

    @staticmethod
    def stack(parts: Sequence[Rows]) -> npt.NDArray[np.float32]:
        """One matrix of every part's rows, in order (all of one width)."""
        if len(parts) == 1:
            return parts[0].matrix()
        values: list[float] = []
        for part in parts:
            values += part.values
        return np.array(values, dtype=np.float32).reshape(-1, parts[0].width)


class AnswerError(Exception):
    """A failure answered with its own status and a message, as `{"error": message}`."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after  # seconds, sent as Retry-After when set


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


def plain_numbers(values: list[Any]) -> bool:
    """Whether every value is an int or float (not a bool), finite and within float32's
    range: the common request, checked with builtins over the whole list at once."""
    return (
        set(map(type, values)) <= _NUMBER_TYPES
        and all(map(math.isfinite, values))
        and max(map(abs, values), default=0) <= FLOAT32_MAX
    )


def checked_rows(rows: Any, n_features: int, where: str) -> Rows:
    if not isinstance(rows, list) or not rows:
        raise ClientError(422, f"{where} must be a non-empty list of rows")
    if len(rows) > MAX_ROWS:
        raise ClientError(413, f"{where} has {len(rows)} rows; send at most {MAX_ROWS} at once")
    if all(type(row) is list and len(row) == n_features and plain_numbers(row) for row in rows):
        return Rows.from_nested(rows, n_features)
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


Value = Annotated[float, msgspec.Meta(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]  # ints too, no bools


class _SimpleBody(msgspec.Struct):
    data: list[list[Value]]


_read_simple = msgspec.json.Decoder(_SimpleBody).decode


def simple_fast(body: bytes, n_features: int) -> Rows | None:
    try:
        rows = _read_simple(body).data
    except (msgspec.DecodeError, RecursionError):  # msgspec recurses to skip unknown fields
        return None
    if not rows or len(rows) > MAX_ROWS or any(len(row) != n_features for row in rows):
        return None
    return Rows.from_nested(rows, n_features)


def simple_request(body: bytes, n_features: int) -> Rows:
    """`{"data": [[f1, f2, ...], ...]}` -> rows."""
    fast = simple_fast(body, n_features)
    return fast if fast is not None else simple_general(body, n_features)


def simple_general(body: bytes, n_features: int) -> Rows:
    return simple_parsed(parse_json(body), n_features)


def simple_parsed(parsed: Any, n_features: int) -> Rows:
    if not isinstance(parsed, dict) or "data" not in parsed:
        raise ClientError(422, 'expected a JSON object {"data": [[...], ...]}')
    return checked_rows(parsed["data"], n_features, "data")
