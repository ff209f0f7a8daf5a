"""The columnar path's input, read as two streams of chunks of the same rows: one
holds the features (`feature_chunks`), the other selects from the ids which rows to
predict (`selections`); each runs on a thread of its own, beside predicting.

CSV rows that cannot be split into the header's fields are skipped alike by both
streams and named by the ids' stream among the rejections.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlpatterns.serving.batch.base import BatchInputError, as_text_rows
from mlpatterns.serving.batch.ids import Wanted, decide_rows
from mlpatterns.serving.batch.parts import COMPRESSIONS, DEFAULT_COMPRESSION
from mlpatterns.serving.batch.places import Place

__all__ = [
    "Features",
    "Selection",
    "checked_compression",
    "checked_source",
    "exact_chunks",
    "feature_chunks",
    "selections",
    "text_rows",
]


@dataclass(frozen=True)
class Features:
    """One chunk's feature columns, read before its rows are decided."""

    batch: pa.RecordBatch
    matrix: npt.NDArray[np.float32] | None  # None when some value is not a finite number
    first_row: int  # its first row's number in the file, from 1, rows too broken aside


@dataclass(frozen=True)
class Selection:
    """Which rows of a chunk to predict, chosen from their ids."""

    ids: pa.Array  # every row's, as strings
    wanted: Wanted
    unreadable: dict[str, str]  # rows too broken to read, found since the decision before


def feature_chunks(path: Place, features: list[str], size: int) -> Iterator[Features]:
    first_row = 1
    # the rows too broken to read are named by the ids' stream, its twin
    for batch in exact_chunks(path, features, size, {}):
        yield Features(batch, feature_matrix(batch, features), first_row)
        first_row += batch.num_rows


def selections(path: Place, id_column: str, size: int, done: pa.Array) -> Iterator[Selection]:
    """A selection for each chunk of `feature_chunks`, in the same order, then one more
    if broken rows follow the last readable one (a selection of no rows). Ids in key
    order are selected chunk by chunk; at the first one out of it, all the rest are
    read and sorted first (`ids.decide_rows`)."""
    unreadable: dict[str, str] = {}

    def id_chunks() -> Iterator[pa.Array]:
        for batch in exact_chunks(path, [id_column], size, unreadable):
            yield pc.cast(batch.column(0), pa.string())

    for ids, wanted in decide_rows(id_chunks(), done):
        found = dict(unreadable)
        unreadable.clear()
        yield Selection(ids, wanted, found)
    if unreadable:
        yield Selection(pa.array([], pa.string()), np.ones(0, dtype=bool), unreadable)


def checked_source(source: Place, columns: list[str]) -> Place:
    if not source.is_file():
        raise BatchInputError(f"{source.shown} does not exist")
    if source.suffix not in (".csv", ".parquet"):
        raise BatchInputError(f"{source.shown}: the columnar path reads .csv and .parquet files")
    if source.suffix == ".parquet":
        with source.filesystem.open_input_file(source.path) as file:
            schema = pq.ParquetFile(file).schema_arrow
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise BatchInputError(f"{source.shown} lacks the columns {missing}")
        _check_id_type(source.shown, schema.field(columns[0]))
    return source


def checked_compression(compression: str | None) -> str:
    if not compression:
        return DEFAULT_COMPRESSION
    if compression not in COMPRESSIONS:
        raise BatchInputError(
            f"compression {compression!r} is not a Parquet codec: "
            f"choose one of {', '.join(COMPRESSIONS)}"
        )
    return compression


def _check_id_type(source: str, id_field: pa.Field) -> None:
    """Ids are compared as text: a column arrow cannot cast to text (a list, a struct)
    is refused before anything is read."""
    try:
        pc.cast(pa.array([], id_field.type), pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise BatchInputError(
            f"{source}: the id column {id_field.name!r} holds {id_field.type}; "
            "ids must be text or numbers (choose another with --id-column)"
        ) from None


def exact_chunks(
    path: Place, columns: list[str], size: int, rejected: dict[str, str]
) -> Iterator[pa.RecordBatch]:
    """Chunks of exactly `size` rows (the last may be shorter), so that every part holds
    `size` predictions whatever the reader's blocks or row groups. CSV rows with the
    wrong number of fields go to `rejected`, named by their value in `columns[0]`. The
    same file read with other `columns` yields the same rows in the same order."""
    return exactly(_read(path, columns, size, rejected), size)


def exactly(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(held)
            yield from table.slice(0, size).combine_chunks().to_batches()
            rest = table.slice(size)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield from pa.Table.from_batches(held).combine_chunks().to_batches()


def _read(
    path: Place, columns: list[str], size: int, rejected: dict[str, str]
) -> Iterator[pa.RecordBatch]:
    if path.suffix == ".parquet":
        # no thread pool of arrow's own: reading already runs beside predicting and
        # writing, and on few cores handing each column to a pool cost more than it won
        with path.filesystem.open_input_file(path.path) as file:
            parquet = pq.ParquetFile(file)
            yield from parquet.iter_batches(batch_size=size, columns=columns, use_threads=False)
        return

    name_of = _broken_row_name(path, columns[0])

    def reject(row: pa_csv.InvalidRow) -> str:
        rejected[name_of(row.text or "")] = (
            f"has {row.actual_columns} fields; the file's header has {row.expected_columns}"
        )
        return "skip"

    stream = path.filesystem.open_input_stream(path.path)
    try:
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=max(1 << 20, size * 64)),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=reject),
            # every column as text: a bad value rejects its row, not the whole file; an
            # empty field, and only that, is null (so an empty id is a missing one)
            convert_options=pa_csv.ConvertOptions(
                include_columns=columns,
                column_types=dict.fromkeys(columns, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, KeyError) as error:
        stream.close()
        raise BatchInputError(f"{path.shown}: {error}") from None
    with stream:
        yield from reader


def _broken_row_name(path: Place, column: str) -> Callable[[str], str]:
    """How a CSV row with the wrong number of fields is named among the rejections: by
    its field in `column` (parsed as CSV, quotes and all), or, where it has none, by
    its text (arrow's streaming reader does not know line numbers)."""
    with path.filesystem.open_input_stream(path.path) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
        header = next(csv.reader(text), [])
    at = header.index(column) if column in header else len(header)

    def name_of(text: str) -> str:
        fields = next(csv.reader([text]), [])
        return fields[at] if at < len(fields) and fields[at] else f"<row {text[:60]!r}>"

    return name_of


def feature_matrix(batch: pa.RecordBatch, features: list[str]) -> npt.NDArray[np.float32] | None:
    """The features as float32, or None when some value is not a finite number."""
    try:
        matrix = np.column_stack(
            [
                pc.cast(batch.column(name), pa.float32()).to_numpy(zero_copy_only=False)
                for name in features
            ]
        ).astype(np.float32, copy=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return matrix if np.isfinite(matrix).all() else None


def text_rows(batch: pa.RecordBatch, features: list[str]) -> list[list[str]]:
    return as_text_rows([batch.column(name).to_pylist() for name in features])
