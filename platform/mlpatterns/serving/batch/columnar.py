"""The columnar path: CSV or Parquet in, a folder of Parquet parts out, with pyarrow
reading, checking, selecting and writing whole chunks in C++ rather than row by row
in Python.

Threads overlap the stages: one reads the features (`reading.feature_chunks`), one
selects from the ids which rows to predict (`reading.selections`), this one
predicts, and `WRITERS` write the parts. Each chunk is predicted once its rows are
selected, so nothing is predicted that is not written; results are counted in chunk
order. Labels are written as class indices, the names once per part
(`class_indices`), never as a string per row.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlpatterns.serving.batch.base import (
    BatchInputError,
    BatchResult,
    Chunk,
    OnPrediction,
    rejected_without_id,
    to_matrix,
)
from mlpatterns.serving.batch.class_indices import ClassIndexPredictor
from mlpatterns.serving.batch.parts import PartsSink
from mlpatterns.serving.batch.places import Place
from mlpatterns.serving.batch.reading import (
    Features,
    Selection,
    checked_compression,
    checked_source,
    feature_chunks,
    selections,
    text_rows,
)
from mlpatterns.serving.model import LoadedModel, Prediction
from mlpatterns.serving.prefetch import prefetched

__all__ = ["WRITERS", "Prepared", "predict_to_parts", "prepared"]

WRITERS = 2  # a part's sync to disk waits on the device: a second writer hides it
Predicted = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]  # class indices, probabilities
_NONE: Predicted = (np.empty(0, np.int64), np.empty((0, 0), np.float32))


@dataclass(frozen=True)
class Prepared:
    """One chunk, selected and checked: what is left to predict, and why the rest is not."""

    read: int  # rows read, including those too broken to read (in `rejected`)
    ids: pa.Array
    matrix: npt.NDArray[np.float32]  # the features of the rows in `ids`
    rejected: dict[str, str]
    skipped: int  # done already, or repeated


def prepared(chunk: Features, selection: Selection, features: list[str]) -> Prepared:
    rows = chunk.batch.num_rows
    ids, wanted = selection.ids, selection.wanted
    if len(ids) != rows:  # the two streams read the same rows, unless the file changed
        raise BatchInputError(f"the input changed while it was read ({len(ids)} ids, {rows} rows)")
    rejected = dict(selection.unreadable)
    without_id: dict[str, str] = {}
    if ids.null_count:
        missing = np.flatnonzero(~pc.is_valid(ids).to_numpy(zero_copy_only=False))
        without_id = rejected_without_id(chunk.first_row + row for row in missing.tolist())
    rejected.update(without_id)
    skipped = rows - int(wanted.sum()) - len(without_id)
    read = rows + len(selection.unreadable)
    kept = None if wanted.all() else pa.array(wanted)
    if kept is not None:
        ids = ids.filter(kept)
    if chunk.matrix is not None:
        matrix = chunk.matrix if kept is None else chunk.matrix[wanted]
        return Prepared(read, ids, matrix, rejected, skipped)
    # some value is not a finite number: sort the rows out one by one
    batch = chunk.batch if kept is None else chunk.batch.filter(kept)
    good, matrix, bad = to_matrix(Chunk(ids.to_pylist(), text_rows(batch, features)), len(features))
    return Prepared(read, pa.array(good, pa.string()), matrix, {**rejected, **bad}, skipped)


def predict_to_parts(
    model: LoadedModel,
    source: Place,
    output: Place,
    *,
    id_column: str = "id",
    chunk_rows: int,
    force: bool = False,
    compression: str | None = None,
    on_chunk: Callable[[BatchResult], None] = lambda result: None,
    on_prediction: OnPrediction | None = None,
) -> BatchResult:
    """`compression`: the parts' codec, one of `parts.COMPRESSIONS` (None: none)."""
    features = model.metadata.feature_names
    codec = checked_compression(compression)
    path = checked_source(source, [id_column, *features])
    predictor = ClassIndexPredictor(model)
    sink = PartsSink(output, predictor.classes, force, codec)
    done = sink.done_ids()
    result = BatchResult()
    pending: deque[tuple[Future[None], Prepared, Predicted]] = deque()

    def count(written: Future[None], chunk: Prepared, predicted: Predicted) -> None:
        written.result()  # raises the writer's error
        result.read += chunk.read
        result.rejected.update(chunk.rejected)
        result.skipped += chunk.skipped
        result.predicted += len(chunk.ids)
        if on_prediction is not None and len(chunk.ids):  # a list per row: only when asked
            labels, probabilities = predicted
            names = [predictor.classes[i] for i in labels.tolist()]
            on_prediction(
                chunk.ids.to_pylist(), chunk.matrix, Prediction.checked(names, probabilities)
            )
        on_chunk(result)

    chunks = prefetched(feature_chunks(path, features, chunk_rows), 2, "batch-read")
    chosen = prefetched(selections(path, id_column, chunk_rows, done), 2, "batch-ids")
    # closing: an error stops the reading threads at once, not at garbage collection
    with closing(chunks), closing(chosen), ThreadPoolExecutor(WRITERS, "batch-write") as writer:
        for chunk in chunks:
            ready = prepared(chunk, _expected(next(chosen, None)), features)
            if len(ready.ids):
                predicted = predictor.predict(ready.matrix)
                written = writer.submit(sink.write, ready.ids, *predicted, model.version)
            else:
                predicted, written = _NONE, _finished()
            pending.append((written, ready, predicted))
            while len(pending) > WRITERS:  # bounded: a chunk in each writer, one waiting
                count(*pending.popleft())
        empty = Features(pa.record_batch({}), np.empty((0, len(features)), np.float32), 0)
        for trailing in chosen:  # rows too broken to read, after the last readable one
            pending.append((_finished(), prepared(empty, trailing, features), _NONE))
        while pending:
            count(*pending.popleft())
    return result


def _expected(selection: Selection | None) -> Selection:
    if selection is None:
        raise BatchInputError("the input changed while it was read (fewer ids than rows)")
    return selection


def _finished() -> Future[None]:
    nothing: Future[None] = Future()
    nothing.set_result(None)
    return nothing
