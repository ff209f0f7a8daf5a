"""Batch prediction, columnar: CSV or Parquet in, a folder of Parquet part files out
(`predictions.parquet/part-*.parquet`), with pyarrow reading, checking, de-duplicating
and writing whole chunks in C++ instead of row by row in Python.

The contract is the row-wise path's (`batch.py`): a chunk's results land together
(a part file is written under a temporary name, synced, then renamed), a rerun
predicts only rows whose id has no prediction yet, an id repeated in the input is
predicted once, and rows that cannot be read are rejected with their reason.

The ids and the features are read as two streams of the same chunks
(`batch_reading.py`), and `batch_ids` decides from the ids which rows to predict.
Reading the features, deciding, predicting and writing run on their own threads. On a
first run a chunk is predicted before its rows are decided, and a repeated id's
prediction is dropped before writing: ids out of key order are all read and sorted
before the first decision, and predicting need not wait for that. Labels are written
as class indices with the class names once per part (`class_indices.py`), never as a
string per row.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlpatterns.serving.batch import (
    BatchInputError,
    BatchResult,
    Chunk,
    OnPrediction,
    rejected_without_id,
    to_matrix,
)
from mlpatterns.serving.batch_ids import Wanted
from mlpatterns.serving.batch_reading import (
    Decision,
    Features,
    checked_source,
    decisions,
    feature_chunks,
    text_rows,
)
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
    """One chunk, decided and checked: what is left to predict, and why the rest is not."""

    read: int  # rows read, including those too broken to read (in `rejected`)
    ids: pa.Array
    matrix: npt.NDArray[np.float32]
    rejected: dict[str, str]
    skipped: int  # done already, or repeated
    kept: Wanted | None  # which of the chunk's rows `ids` and `matrix` hold; None: all


def _prepared(chunk: Features, decision: Decision, features: list[str]) -> _Prepared:
    ids, wanted = decision.ids, decision.wanted
    rows = chunk.batch.num_rows
    if len(ids) != rows:  # the two streams read the same rows, unless the file changed
        raise BatchInputError(f"the input changed while it was read ({len(ids)} ids, {rows} rows)")
    rejected = dict(decision.unreadable)
    without_id: dict[str, str] = {}
    if ids.null_count:
        missing = np.flatnonzero(~pc.is_valid(ids).to_numpy(zero_copy_only=False))
        without_id = rejected_without_id(chunk.first_row + row for row in missing.tolist())
    rejected.update(without_id)
    skipped = rows - int(wanted.sum()) - len(without_id)
    read = rows + len(decision.unreadable)
    kept = None if wanted.all() else wanted
    if kept is not None:
        ids = ids.filter(pa.array(kept))
    if chunk.matrix is not None:
        matrix = chunk.matrix if kept is None else chunk.matrix[kept]
        return _Prepared(read, ids, matrix, rejected, skipped, kept)
    # some value is not a finite number: sort the rows out one by one
    batch = chunk.batch if kept is None else chunk.batch.filter(pa.array(kept))
    good, matrix, bad = to_matrix(Chunk(ids.to_pylist(), text_rows(batch, features)), len(features))
    rejected.update(bad)
    return _Prepared(read, pa.array(good, pa.string()), matrix, rejected, skipped, kept)


class _DecidedAhead:
    """The decisions, made in order on a thread of their own, a few chunks ahead of the
    chunk being predicted; each is a future, so that a writer can wait for it."""

    def __init__(self, decisions: Iterator[Decision], ahead: int = 2) -> None:
        self._decisions = decisions
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="batch-ids")
        self._queued: deque[Future[Decision | None]] = deque()
        self._ahead = ahead
        self._queue_ahead()  # deciding starts now, beside the first read of the features

    def _queue_ahead(self) -> None:
        while len(self._queued) <= self._ahead:
            self._queued.append(self._thread.submit(next, self._decisions, None))

    def next(self) -> Future[Decision | None]:
        """The next chunk's decision; None once there are no more."""
        self._queue_ahead()
        return self._queued.popleft()

    def close(self) -> None:
        for queued in self._queued:
            queued.cancel()
        self._thread.shutdown(wait=True)
        if isinstance(self._decisions, Generator):
            self._decisions.close()  # stops its reader, on this thread, now that it is idle


Written = tuple[_Prepared, Prediction | None]
SPECULATED_CHUNKS = 16  # predicted before their rows are decided, at most (memory)


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
    """Stages overlap: a thread reads the features, another decides from the ids which
    rows to predict, this thread predicts, and `WRITERS` threads write parts (writing
    costs more than predicting a cheap model); results are counted in chunk order.

    A first run predicts a chunk before its rows are decided: only a repeated id can be
    left out then, and its prediction is dropped before writing. Ids out of key order
    are all read and sorted before the first decision, and predicting need not wait for
    that. A rerun decides first, so as not to predict again what is done already."""
    features = model.metadata.feature_names
    path = checked_source(source, [id_column, *features])
    predictor = ClassIndexPredictor(model)
    sink = PartsSink(output, predictor.classes, force)
    done = sink.done_ids()
    speculate = not len(done)
    in_flight = SPECULATED_CHUNKS if speculate else WRITERS
    result = BatchResult()
    chunks = prefetched(feature_chunks(path, features, chunk_rows), 2, "batch-read")
    decided = _DecidedAhead(decisions(path, id_column, chunk_rows, done))
    pending: deque[Future[Written]] = deque()

    def commit_oldest() -> None:
        chunk, prediction = pending.popleft().result()  # raises the writer's error
        result.read += chunk.read
        result.rejected.update(chunk.rejected)
        result.skipped += chunk.skipped
        result.predicted += len(chunk.ids)  # written, or none left to predict
        if prediction is not None and on_prediction is not None:
            on_prediction(chunk.ids.to_pylist(), chunk.matrix, prediction)
        on_chunk(result)

    def write(chunk: _Prepared, labels: ClassIndices, probabilities: Probabilities) -> Written:
        if not len(chunk.ids):
            return chunk, None
        sink.write(chunk.ids, labels, probabilities, model.version)
        if on_prediction is None:  # nobody reads it: spare the conversion to lists
            return chunk, None
        names = predictor.classes
        return chunk, Prediction.checked([names[i] for i in labels.tolist()], probabilities)

    def decide_then_write(
        chunk: Features, decision: Future[Decision | None], predicted: Predicted
    ) -> Written:
        prepared = _prepared(chunk, _expected(decision.result()), features)
        labels, probabilities = predicted
        if prepared.kept is not None:
            labels, probabilities = labels[prepared.kept], probabilities[prepared.kept]
        return write(prepared, labels, probabilities)

    # closing: an error here stops the reading threads at once, not at garbage collection
    with (
        closing(chunks),
        closing(decided),
        ThreadPoolExecutor(WRITERS, thread_name_prefix="batch-write") as writer,
    ):
        for chunk in chunks:
            decision = decided.next()
            if speculate and chunk.matrix is not None:
                predicted = predictor.predict(chunk.matrix)
                pending.append(writer.submit(decide_then_write, chunk, decision, predicted))
            else:
                prepared = _prepared(chunk, _expected(decision.result()), features)
                predicted = predictor.predict(prepared.matrix) if len(prepared.ids) else _NONE
                pending.append(writer.submit(write, prepared, *predicted))
            while pending and (pending[0].done() or len(pending) > in_flight):
                commit_oldest()
        while (trailing := decided.next().result()) is not None:  # broken rows at the end
            empty = Features(pa.record_batch({}), np.empty((0, len(features)), np.float32), 0)
            pending.append(_finished(_prepared(empty, trailing, features)))
        while pending:
            commit_oldest()
    return result


Predicted = tuple[ClassIndices, Probabilities]
_NONE: Predicted = (np.empty(0, np.int64), np.empty((0, 0), np.float32))


def _expected(decision: Decision | None) -> Decision:
    if decision is None:
        raise BatchInputError("the input changed while it was read (fewer ids than rows)")
    return decision


def _finished(written: _Prepared) -> Future[Written]:
    done: Future[Written] = Future()
    done.set_result((written, None))
    return done
