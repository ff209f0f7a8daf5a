"""What both paths of a batch job share: its errors, its result, a chunk of rows as
read, and the checks that turn rows of text into a matrix or reject them by reason."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mlpatterns.serving.model import Prediction

__all__ = [
    "CHUNK_ROWS",
    "S3",
    "BatchInputError",
    "BatchResult",
    "Chunk",
    "OnPrediction",
    "as_text_rows",
    "columnar_chunk_rows",
    "rejected_without_id",
    "to_matrix",
]

CHUNK_ROWS = 10_000
S3 = "s3://"  # an object in a store, not a path here: the columnar path's alone
COLUMNAR_CHUNK_ROWS = 100_000
COLUMNAR_CHUNK_BYTES = 4 << 20  # of float32 features: a bound for wide rows
OnPrediction = Callable[[list[str], npt.NDArray[np.float32], Prediction], None]


class BatchInputError(ValueError):
    pass


@dataclass(frozen=True)
class Chunk:
    ids: list[str]
    rows: list[list[str]]  # the features as read, converted per chunk
    # where in the chunk rows without an id were (left out of `ids` and `rows`): a
    # null in Parquet or SQLite, an empty field in CSV, which has no null
    without_id: list[int] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.ids) + len(self.without_id)


@dataclass
class BatchResult:
    read: int = 0
    predicted: int = 0
    skipped: int = 0  # had a prediction already, or repeated an id
    rejected: dict[str, str] = field(default_factory=dict)  # id -> reason


def as_text_rows(columns: list[list[object]]) -> list[list[str]]:
    """Columns of values as rows of text, a missing value as an empty field (as CSV has
    it), for `to_matrix` to convert or reject row by row."""
    return [["" if v is None else str(v) for v in row] for row in zip(*columns, strict=True)]


def rejected_without_id(row_numbers: Iterable[int]) -> dict[str, str]:
    """Rows that have no id, by their number in the input (from 1), named alike on the
    row-wise and the columnar path."""
    return {f"<row {number}>": "has no id" for number in row_numbers}


def to_matrix(
    chunk: Chunk, width: int
) -> tuple[list[str], npt.NDArray[np.float32], dict[str, str]]:
    """The chunk's valid rows as float32, and each invalid row's reason."""
    try:
        matrix = np.asarray(chunk.rows, dtype=np.float32)
        if matrix.shape == (len(chunk.ids), width) and np.isfinite(matrix).all():
            return chunk.ids, matrix, {}
    except ValueError:
        pass
    ids, good, rejected = [], [], {}
    for row_id, row in zip(chunk.ids, chunk.rows, strict=True):
        if len(row) != width:
            rejected[row_id] = f"has {len(row)} feature values, the model takes {width}"
            continue
        try:
            values = np.asarray(row, dtype=np.float32)
        except ValueError:
            rejected[row_id] = f"has a value that is not a number: {row}"
            continue
        if not np.isfinite(values).all():
            rejected[row_id] = f"has a missing or non-finite value: {row}"
            continue
        ids.append(row_id)
        good.append(values)
    return ids, np.asarray(good, dtype=np.float32).reshape(len(good), width), rejected


def columnar_chunk_rows(features: int) -> int:
    """Rows per Parquet part when none are asked for: 100,000, or fewer where that many
    rows would hold over 4 MiB of features (16,384 rows of 64 features, 1,024 of 1,024
    and wider), because several chunks are in memory at once (read ahead, predicting,
    in writing, and on a first run with the prediction log up to 16 awaiting their
    decision: `batch_columnar.SPECULATED_CHUNKS_LOGGED`)."""
    fitting = COLUMNAR_CHUNK_BYTES // (4 * max(features, 1))
    return max(1_024, min(COLUMNAR_CHUNK_ROWS, fitting))
