"""Batch prediction, columnar: CSV or Parquet in, a folder of Parquet part files out
(`predictions.parquet/part-*.parquet`), with pyarrow reading, checking, de-duplicating
and writing whole chunks in C++ instead of row by row in Python.

The contract is the row-wise path's (`batch.py`): a chunk's results land together
(a part file is written under a temporary name, synced, then renamed), a rerun
predicts only rows whose id has no prediction yet, an id repeated in the input is
predicted once, and rows that cannot be read are rejected with their reason.

The ids and the features are read as two columns, chunk by chunk, and `batch_ids`
decides from the ids which rows to predict. Reading, predicting and writing run on
their own threads, each stage a chunk ahead of the next. Labels are written as class
indices with the class names once per part (`class_indices.py`), never as a string
per row.
"""

from __future__ import annotations

import csv
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlpatterns.serving.batch import (
    BatchInputError,
    BatchResult,
    Chunk,
    OnPrediction,
    rejected_without_id,
    to_matrix,
)
from mlpatterns.serving.batch_ids import decide_rows
from mlpatterns.serving.class_indices import ClassIndexPredictor
from mlpatterns.serving.model import LoadedModel, Prediction
from mlpatterns.serving.prefetch import prefetched

ClassIndices = npt.NDArray[np.int64]
Probabilities = npt.NDArray[np.float32]

PART_GLOB = "part-*.parquet"
DICTIONARY_COLUMNS = ["label", "model_version", "predicted_at"]
WRITERS = 3  # a part's sync to disk waits on the device: more writers hide it


def is_parts_folder(output: Path) -> bool:
    return output.suffix == ".parquet" and (output.is_dir() or not output.exists())


def _checked(source: str, columns: list[str]) -> Path:
    path = Path(source)
    if not path.exists():
        raise BatchInputError(f"{source} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise BatchInputError(f"{source}: the columnar path reads .csv and .parquet files")
    if suffix == ".parquet":
        missing = [c for c in columns if c not in pq.ParquetFile(path).schema_arrow.names]
        if missing:
            raise BatchInputError(f"{source} lacks the columns {missing}")
    return path


def _batches(
    path: Path, columns: list[str], size: int, rejected: dict[str, str]
) -> Iterator[pa.RecordBatch]:
    """Chunks of exactly `size` rows (the last may be shorter), so that every part holds
    `size` predictions whatever the reader's blocks or row groups. CSV rows with the
    wrong number of fields go to `rejected`, named by their value in `columns[0]`. The
    same file read with other `columns` yields the same rows in the same order."""
    return _exactly(_read(path, columns, size, rejected), size)


def _exactly(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
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
    path: Path, columns: list[str], size: int, rejected: dict[str, str]
) -> Iterator[pa.RecordBatch]:
    if path.suffix.lower() == ".parquet":
        # no thread pool of arrow's own: reading already runs beside predicting and
        # writing, and on few cores handing each column to a pool cost more than it won
        file = pq.ParquetFile(path)
        yield from file.iter_batches(batch_size=size, columns=columns, use_threads=False)
        return

    name_of = _broken_row_name(path, columns[0])

    def reject(row: pa_csv.InvalidRow) -> str:
        rejected[name_of(row.text or "")] = (
            f"has {row.actual_columns} fields; the file's header has {row.expected_columns}"
        )
        return "skip"

    try:
        reader = pa_csv.open_csv(
            path,
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
        raise BatchInputError(f"{path}: {error}") from None
    yield from reader


def _broken_row_name(path: Path, column: str) -> Callable[[str], str]:
    """How a CSV row with the wrong number of fields is named among the rejections: by
    its field in `column` (parsed as CSV, quotes and all), or, where it has none, by
    its text (arrow's streaming reader does not know line numbers)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as source:
        header = next(csv.reader(source), [])
    at = header.index(column) if column in header else len(header)

    def name_of(text: str) -> str:
        fields = next(csv.reader([text]), [])
        return fields[at] if at < len(fields) and fields[at] else f"<row {text[:60]!r}>"

    return name_of


def _features(batch: pa.RecordBatch, features: list[str]) -> npt.NDArray[np.float32] | None:
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


def _text_rows(batch: pa.RecordBatch, features: list[str]) -> list[list[str]]:
    columns = [batch.column(name).to_pylist() for name in features]
    return [["" if v is None else str(v) for v in row] for row in zip(*columns, strict=True)]


def _constant(value: str, rows: int) -> pa.DictionaryArray:
    """One value for every row, stored once (a dictionary of one entry)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int8)), pa.array([value]))


def parts_schema(classes: list[str]) -> pa.Schema:
    """Every column of a part is required: no value in it is ever missing, and saying so
    spares the writer a definition level per value (a tenth of the writing time)."""
    constant = pa.dictionary(pa.int8(), pa.string())  # one value, see `_constant`
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("label", pa.dictionary(pa.int32(), pa.string()), nullable=False),
            *(pa.field(f"p_{name}", pa.float32(), nullable=False) for name in classes),
            pa.field("model_version", constant, nullable=False),
            pa.field("predicted_at", constant, nullable=False),
        ]
    )


class PartsSink:
    def __init__(self, folder: Path, classes: list[str], force: bool) -> None:
        self.folder = folder
        self.classes = classes
        self._class_names = pa.array(classes, pa.string())
        self._schema = parts_schema(classes)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".part-*"):  # a crash mid-write leaves only these
            stale.unlink()
        if force:
            for part in folder.glob(PART_GLOB):
                part.unlink()

    def done_ids(self) -> pa.Array:
        parts = sorted(self.folder.glob(PART_GLOB))
        columns = [pq.read_table(part, columns=["id"]).column("id") for part in parts]
        return pa.chunked_array(columns, type=pa.string()).combine_chunks()

    def write(
        self,
        ids: pa.Array,
        labels: ClassIndices,
        probabilities: Probabilities,
        version: str,
    ) -> None:
        """`labels`: each row's class as an index into `classes`, stored as a dictionary
        column (the names once per part), as the constant columns are."""
        label = pa.DictionaryArray.from_arrays(pa.array(labels, pa.int32()), self._class_names)
        by_class = [pa.array(probabilities[:, index]) for index in range(len(self.classes))]
        now = datetime.now(UTC).isoformat()
        columns = [ids, label, *by_class, _constant(version, len(ids)), _constant(now, len(ids))]
        name = f"part-{datetime.now(UTC):%Y%m%d%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
        temporary = self.folder / f".{name}"
        with temporary.open("wb") as written:  # a file object: pyarrow resolves no filesystem
            # dictionaries only where values repeat (trying one for the unique ids made
            # writing several times slower); min and max for the ids, which readers look
            # up (for the other columns they cost a fifth of the writing and tell
            # little: the dictionary lists their values already); values handed to the
            # encoders 64k at a time, not 1,024 (5 to 10% less time writing)
            pq.write_table(
                pa.Table.from_arrays(columns, schema=self._schema),
                written,
                use_dictionary=DICTIONARY_COLUMNS,
                write_statistics=["id"],
                write_batch_size=1 << 16,
            )
            written.flush()
            os.fsync(written.fileno())
        temporary.replace(self.folder / name)  # the whole chunk appears at once


@dataclass(frozen=True)
class _Prepared:
    """One chunk, read and checked: what is left to predict, and why the rest is not."""

    read: int  # rows read, including those too broken to read (in `rejected`)
    ids: pa.Array
    matrix: npt.NDArray[np.float32]
    rejected: dict[str, str]
    skipped: int  # done already, or repeated


def _prepared(
    path: Path, id_column: str, features: list[str], size: int, done: pa.Array
) -> Iterator[_Prepared]:
    """The ids and the features are read as two columns apart, in chunks of the same
    rows: the ids run ahead of the features when the rest of them must be decided."""
    unreadable: dict[str, str] = {}  # filled by the id reader (the features' is a twin)
    id_chunks = (
        pc.cast(batch.column(0), pa.string())
        for batch in _batches(path, [id_column], size, unreadable)
    )
    decisions = decide_rows(id_chunks, done)
    offset = 0
    for batch, (ids, wanted) in zip(_batches(path, features, size, {}), decisions, strict=True):
        read = batch.num_rows
        rejected = {key: unreadable.pop(key) for key in list(unreadable)}
        broken = len(rejected)
        without_id: dict[str, str] = {}
        if ids.null_count:
            missing = np.flatnonzero(~pc.is_valid(ids).to_numpy(zero_copy_only=False))
            without_id = rejected_without_id(offset + row + 1 for row in missing.tolist())
        rejected.update(without_id)
        offset += read
        skipped = read - int(wanted.sum()) - len(without_id)
        if not wanted.all():
            mask = pa.array(wanted)
            batch, ids = batch.filter(mask), ids.filter(mask)
        matrix = _features(batch, features)
        if matrix is None:  # some row is bad: sort them out one by one
            chunk = Chunk(ids.to_pylist(), _text_rows(batch, features))
            good, matrix, bad = to_matrix(chunk, len(features))
            ids = pa.array(good, pa.string())
            rejected.update(bad)
        yield _Prepared(read + broken, ids, matrix, rejected, skipped)
    if unreadable:  # broken rows after the last readable one
        nothing = np.empty((0, len(features)), np.float32)
        yield _Prepared(len(unreadable), pa.array([], pa.string()), nothing, unreadable, 0)


def predict_to_parts(
    model: LoadedModel,
    source: str,
    output: Path,
    *,
    id_column: str = "id",
    chunk_rows: int,
    force: bool = False,
    on_chunk: Callable[[BatchResult], None] = lambda result: None,
    on_prediction: OnPrediction | None = None,
) -> BatchResult:
    """Three stages overlap: a thread reads and checks the next chunks, this thread
    predicts, and `WRITERS` threads write parts (writing costs more than predicting a
    cheap model); results are counted in the order of the chunks."""
    features = model.metadata.feature_names
    path = _checked(source, [id_column, *features])
    predictor = ClassIndexPredictor(model)
    sink = PartsSink(output, predictor.classes, force)
    result = BatchResult()
    chunks = prefetched(
        _prepared(path, id_column, features, chunk_rows, sink.done_ids()), 2, "batch-read"
    )
    pending: deque[tuple[_Prepared, Future[Prediction | None]]] = deque()

    def commit_oldest() -> None:
        chunk, written = pending.popleft()
        prediction = written.result()  # raises the writer's error
        result.read += chunk.read
        result.rejected.update(chunk.rejected)
        result.skipped += chunk.skipped
        result.predicted += len(chunk.ids)  # written, or none left to predict
        if prediction is not None and on_prediction is not None:
            on_prediction(chunk.ids.to_pylist(), chunk.matrix, prediction)
        on_chunk(result)

    def write(
        chunk: _Prepared, labels: ClassIndices, probabilities: Probabilities
    ) -> Prediction | None:
        sink.write(chunk.ids, labels, probabilities, model.version)
        if on_prediction is None:  # nobody reads it: spare the conversion to lists
            return None
        names = predictor.classes
        return Prediction.checked([names[i] for i in labels.tolist()], probabilities)

    # closing: an error here stops the reading thread at once, not at garbage collection
    with closing(chunks), ThreadPoolExecutor(WRITERS, thread_name_prefix="batch-write") as writer:
        for chunk in chunks:
            if len(chunk.ids):
                labels, probabilities = predictor.predict(chunk.matrix)
                pending.append((chunk, writer.submit(write, chunk, labels, probabilities)))
            else:
                pending.append((chunk, _nothing_to_write()))
            while len(pending) > WRITERS:  # parts in writing while the next is predicted
                commit_oldest()
        while pending:
            commit_oldest()
    return result


def _nothing_to_write() -> Future[Prediction | None]:
    done: Future[Prediction | None] = Future()
    done.set_result(None)
    return done
