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

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

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
    OnIds,
    checked_compression,
    checked_source,
    decisions,
    feature_chunks,
    text_rows,
)
from mlpatterns.serving.batch_sink import (
    ClassIndices,
    PartsSink,
    Probabilities,
    StagedPart,
)
from mlpatterns.serving.class_indices import ClassIndexPredictor
from mlpatterns.serving.model import LoadedModel, Prediction
from mlpatterns.serving.prefetch import prefetched

WRITERS = 3  # a part's sync to disk waits on the device: more writers hide it


@dataclass(frozen=True)
class _Prepared:
    """One chunk, decided and checked: what is left to predict, and why the rest is not."""

    read: int  # rows read, including those too broken to read (in `rejected`)
    ids: pa.Array
    matrix: npt.NDArray[np.float32] | None  # of the rows in `ids`; None: not kept
    rejected: dict[str, str]
    skipped: int  # done already, or repeated
    kept: Wanted | None  # which of the chunk's rows `ids` and `matrix` hold; None: all


def _counted(rows: int, first_row: int, decision: Decision) -> _Prepared:
    """A chunk's rows as decided, its features aside."""
    ids, wanted = decision.ids, decision.wanted
    if len(ids) != rows:  # the two streams read the same rows, unless the file changed
        raise BatchInputError(f"the input changed while it was read ({len(ids)} ids, {rows} rows)")
    rejected = dict(decision.unreadable)
    without_id: dict[str, str] = {}
    if ids.null_count:
        missing = np.flatnonzero(~pc.is_valid(ids).to_numpy(zero_copy_only=False))
        without_id = rejected_without_id(first_row + row for row in missing.tolist())
    rejected.update(without_id)
    skipped = rows - int(wanted.sum()) - len(without_id)
    kept = None if wanted.all() else wanted
    if kept is not None:
        ids = ids.filter(pa.array(kept))
    return _Prepared(rows + len(decision.unreadable), ids, None, rejected, skipped, kept)


def _prepared(chunk: Features, decision: Decision, features: list[str]) -> _Prepared:
    counted = _counted(chunk.batch.num_rows, chunk.first_row, decision)
    kept = counted.kept
    if chunk.matrix is not None:
        return replace(counted, matrix=chunk.matrix if kept is None else chunk.matrix[kept])
    # some value is not a finite number: sort the rows out one by one
    batch = chunk.batch if kept is None else chunk.batch.filter(pa.array(kept))
    rows = Chunk(counted.ids.to_pylist(), text_rows(batch, features))
    good, matrix, bad = to_matrix(rows, len(features))
    rejected = {**counted.rejected, **bad}
    return replace(counted, ids=pa.array(good, pa.string()), matrix=matrix, rejected=rejected)


class _DecidedAhead:
    """The decisions, made in order on a thread of their own, a few chunks ahead of the
    chunk being predicted, each a future that a writer can wait for; and each chunk's
    ids, as a future too, handed over as soon as they are read."""

    def __init__(self, decide: Callable[[OnIds], Iterator[Decision]], ahead: int = 2) -> None:
        self._ids: dict[int, Future[pa.Array]] = {}  # read or asked for, not yet both
        self._ids_lock = threading.Lock()
        self._decisions = decide(lambda index, ids: self._handed(index).set_result(ids))
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="batch-ids")
        self._queued: deque[Future[Decision | None]] = deque()
        self._taken = 0
        self._ahead = ahead
        self._queue_ahead()  # deciding starts now, beside the first read of the features

    def _queue_ahead(self) -> None:
        while len(self._queued) <= self._ahead:
            self._queued.append(self._thread.submit(next, self._decisions, None))

    def _handed(self, index: int) -> Future[pa.Array]:
        """Called once by the reader and once by the taker: the first makes the future,
        the second takes it away, so that no chunk's ids outstay both."""
        with self._ids_lock:
            handed = self._ids.pop(index, None)
            if handed is None:
                handed = self._ids[index] = Future()
            return handed

    def next(self) -> tuple[Future[pa.Array], Future[Decision | None]]:
        """The next chunk's ids and its decision; the decision is None once there are
        no more (and those ids never come)."""
        self._queue_ahead()
        self._taken += 1
        return self._handed(self._taken - 1), self._queued.popleft()

    def close(self) -> None:
        for queued in self._queued:
            queued.cancel()
        self._thread.shutdown(wait=True)
        if isinstance(self._decisions, Generator):
            self._decisions.close()  # stops its reader, on this thread, now that it is idle


Written = tuple[_Prepared, Prediction | None]
Predicted = tuple[ClassIndices, Probabilities]
# chunks predicted before their rows are decided, at most: with the prediction log, each
# keeps its features and predictions in memory until then; without, only its part on disk
SPECULATED_CHUNKS_LOGGED = 16
SPECULATED_CHUNKS = 4096
_NONE: Predicted = (np.empty(0, np.int64), np.empty((0, 0), np.float32))


@dataclass(frozen=True)
class _Staged:
    """A chunk predicted, and its part staged, before its rows were decided."""

    rows: int
    first_row: int
    part: StagedPart
    logged: tuple[Features, Predicted] | None  # for the prediction log, if one is kept


def _kept(predicted: Predicted, kept: Wanted | None) -> Predicted:
    labels, probabilities = predicted
    return predicted if kept is None else (labels[kept], probabilities[kept])


class _PartsWriter:
    """Writes a decided chunk's part at once. A chunk predicted ahead of its decision
    has its part staged (every row) while the ids are sorted, then committed, first
    written again from disk without the rows not wanted, if any. Writing threads never
    wait for a decision: a thread waiting would not stage the chunks behind it."""

    def __init__(
        self,
        sink: PartsSink,
        predictor: ClassIndexPredictor,
        version: str,
        features: list[str],
        on_prediction: OnPrediction | None,
    ) -> None:
        self.sink, self.predictor, self.version = sink, predictor, version
        self.features, self.on_prediction = features, on_prediction

    def write(self, chunk: _Prepared, predicted: Predicted) -> Written:
        if len(chunk.ids):
            self.sink.write(chunk.ids, *predicted, self.version)
        return self._reported(chunk, predicted)

    def write_ahead(
        self,
        chunk: Features,
        ids: Future[pa.Array],
        decision: Future[Decision | None],
        predicted: Predicted,
    ) -> Written | _Staged:
        """Staged when the chunk's ids come before its decision (ids out of key order
        are all read, then sorted), else written as decided."""
        wait((ids, decision), return_when=FIRST_COMPLETED)
        if decision.done() or ids.result().null_count:
            prepared = _prepared(chunk, _expected(decision.result()), self.features)
            return self.write(prepared, _kept(predicted, prepared.kept))
        part = self.sink.stage(ids.result(), *predicted, self.version)
        logged = None if self.on_prediction is None else (chunk, predicted)
        return _Staged(chunk.batch.num_rows, chunk.first_row, part, logged)

    def settle(self, staged: _Staged, decision: Future[Decision | None]) -> Written:
        decided = _expected(decision.result())
        if staged.logged is None:
            prepared = _counted(staged.rows, staged.first_row, decided)
        else:
            prepared = _prepared(staged.logged[0], decided, self.features)
        if prepared.kept is None:
            staged.part.commit()
        elif len(prepared.ids):
            self.sink.restage(staged.part, prepared.kept).commit()
        else:
            staged.part.discard()
        if staged.logged is None:
            return prepared, None
        return self._reported(prepared, _kept(staged.logged[1], prepared.kept))

    def _reported(self, chunk: _Prepared, predicted: Predicted) -> Written:
        if self.on_prediction is None or not len(chunk.ids):  # nobody reads it: no lists
            return chunk, None
        labels, probabilities = predicted
        names = self.predictor.classes
        return chunk, Prediction.checked([names[i] for i in labels.tolist()], probabilities)


_InFlight = tuple[Future[Written | _Staged], Future[Decision | None]]


def predict_to_parts(
    model: LoadedModel,
    source: str,
    output: Path,
    *,
    id_column: str = "id",
    chunk_rows: int,
    force: bool = False,
    compression: str | None = None,
    on_chunk: Callable[[BatchResult], None] = lambda result: None,
    on_prediction: OnPrediction | None = None,
) -> BatchResult:
    """Stages overlap: a thread reads the features, another decides from the ids which
    rows to predict, this thread predicts, and `WRITERS` threads write parts (writing
    costs more than predicting a cheap model); results are counted in chunk order.

    A first run predicts a chunk before its rows are decided: only a repeated id can be
    left out then, and its prediction is dropped. Ids out of key order are all read and
    sorted before the first decision; predicting, and staging the parts, need not wait
    for that. A rerun decides first, so as not to predict again what is done already.

    `compression`: the parts' codec, one of `batch_sink.COMPRESSIONS` (None: none)."""
    features = model.metadata.feature_names
    codec = checked_compression(compression)
    path = checked_source(source, [id_column, *features])
    predictor = ClassIndexPredictor(model)
    sink = PartsSink(output, predictor.classes, force, codec)
    done = sink.done_ids()
    speculate = not len(done)
    ahead = SPECULATED_CHUNKS if on_prediction is None else SPECULATED_CHUNKS_LOGGED
    in_flight = ahead if speculate else WRITERS
    parts = _PartsWriter(sink, predictor, model.version, features, on_prediction)
    result = BatchResult()
    chunks = prefetched(feature_chunks(path, features, chunk_rows), 2, "batch-read")
    decided = _DecidedAhead(partial(decisions, path, id_column, chunk_rows, done))
    pending: deque[_InFlight] = deque()
    # chunks handed to the writing threads and not yet written (or staged), at most: the
    # others wait here, with their features and predictions
    writing = threading.BoundedSemaphore(WRITERS + 1)

    def submit(task: Callable[..., Written | _Staged], *args: object) -> Future[Written | _Staged]:
        writing.acquire()
        future = writer.submit(task, *args)
        future.add_done_callback(lambda _: writing.release())
        return future

    def ready(oldest: _InFlight) -> bool:
        return oldest[0].done() and oldest[1].done()

    def commit_oldest() -> None:
        outcome, decision = pending.popleft()
        written = outcome.result()  # raises the writer's error
        if isinstance(written, _Staged):  # a rename, unless some rows are not wanted
            written = parts.settle(written, decision)
        chunk, prediction = written
        result.read += chunk.read
        result.rejected.update(chunk.rejected)
        result.skipped += chunk.skipped
        result.predicted += len(chunk.ids)  # written, or none left to predict
        # a prediction is reported only with the prediction log, which keeps the features
        if prediction is not None and on_prediction is not None and chunk.matrix is not None:
            on_prediction(chunk.ids.to_pylist(), chunk.matrix, prediction)
        on_chunk(result)

    try:
        # closing: an error stops the reading threads at once, not at garbage collection
        with (
            closing(chunks),
            closing(decided),
            ThreadPoolExecutor(WRITERS, thread_name_prefix="batch-write") as writer,
        ):
            for chunk in chunks:
                ids, decision = decided.next()
                if speculate and chunk.matrix is not None:
                    predicted = predictor.predict(chunk.matrix)
                    written = submit(parts.write_ahead, chunk, ids, decision, predicted)
                else:
                    prepared = _prepared(chunk, _expected(decision.result()), features)
                    matrix = prepared.matrix
                    predicted = (
                        predictor.predict(matrix) if matrix is not None and len(matrix) else _NONE
                    )
                    written = submit(parts.write, prepared, predicted)
                pending.append((written, decision))
                while pending and (ready(pending[0]) or len(pending) > in_flight):
                    commit_oldest()
            while (trailing := decided.next()[1].result()) is not None:  # broken rows, last
                empty = Features(pa.record_batch({}), np.empty((0, len(features)), np.float32), 0)
                pending.append(_finished(_prepared(empty, trailing, features)))
            while pending:
                commit_oldest()
    finally:
        _discard_staged(pending)
    return result


def _discard_staged(pending: deque[_InFlight]) -> None:
    """Parts staged for chunks an error left uncounted: the next run would remove them."""
    for outcome, _ in pending:
        if outcome.done() and outcome.exception() is None:
            staged = outcome.result()
            if isinstance(staged, _Staged):
                staged.part.discard()


def _expected(decision: Decision | None) -> Decision:
    if decision is None:
        raise BatchInputError("the input changed while it was read (fewer ids than rows)")
    return decision


def _finished(written: _Prepared) -> _InFlight:
    outcome: Future[Written | _Staged] = Future()
    outcome.set_result((written, None))
    decision: Future[Decision | None] = Future()
    decision.set_result(None)  # decided already: `written` is its outcome
    return outcome, decision
