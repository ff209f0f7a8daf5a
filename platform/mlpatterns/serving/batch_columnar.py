"""Batch prediction, columnar: CSV or Parquet in, a folder of Parquet part files out
(`predictions.parquet/part-*.parquet`), with pyarrow reading, checking, de-duplicating
and writing whole chunks in C++ instead of row by row in Python.

The contract is the row-wise path's (`batch.py`): a chunk's results land together
(a part file is written under a temporary name, synced, then renamed), a rerun
predicts only rows whose id has no prediction yet, an id repeated in the input is
predicted once, and rows that cannot be read are rejected with their reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlpatterns.serving.batch import BatchInputError, BatchResult, Chunk, OnPrediction, to_matrix
from mlpatterns.serving.model import LoadedModel, Prediction

PART_GLOB = "part-*.parquet"


def is_parts_folder(output: Path) -> bool:
    return output.suffix == ".parquet" and (output.is_dir() or not output.exists())


def _batches(
    source: str, id_column: str, features: list[str], size: int, rejected: dict[str, str]
) -> Iterator[pa.RecordBatch]:
    """Chunks of `size` rows; CSV rows with the wrong number of fields go to `rejected`."""
    path = Path(source)
    if not path.exists():
        raise BatchInputError(f"{source} does not exist")
    columns = [id_column, *features]
    if path.suffix.lower() == ".parquet":
        parquet = pq.ParquetFile(path)
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise BatchInputError(f"{source} lacks the columns {missing}")
        yield from parquet.iter_batches(batch_size=size, columns=columns)
        return
    if path.suffix.lower() != ".csv":
        raise BatchInputError(f"{source}: the columnar path reads .csv and .parquet files")

    def reject(row: pa_csv.InvalidRow) -> str:
        text = row.text or ""
        rejected[text.split(",", 1)[0]] = (
            f"has {row.actual_columns} fields; the file's header has {row.expected_columns}"
        )
        return "skip"

    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=max(1 << 20, size * 64)),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=reject),
            # every column as text: a bad value rejects its row, not the whole file
            convert_options=pa_csv.ConvertOptions(
                include_columns=columns, column_types=dict.fromkeys(columns, pa.string())
            ),
        )
    except (pa.ArrowInvalid, KeyError) as error:
        raise BatchInputError(f"{source}: {error}") from None
    for batch in reader:
        for start in range(0, batch.num_rows, size):
            yield batch.slice(start, size)


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


def _first_of_each(ids: pa.Array) -> npt.NDArray[np.int64]:
    """Positions of each id's first occurrence, in order."""
    table = pa.table({"id": ids, "at": pa.array(np.arange(len(ids)))})
    first = table.group_by("id", use_threads=False).aggregate([("at", "min")])
    return np.sort(first.column("at_min").to_numpy())


def _constant(value: str, rows: int) -> pa.DictionaryArray:
    """One value for every row, stored once (a dictionary of one entry)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int8)), pa.array([value]))


class PartsSink:
    def __init__(self, folder: Path, classes: list[str], force: bool) -> None:
        self.folder = folder
        self.classes = classes
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".part-*"):  # a crash mid-write leaves only these
            stale.unlink()
        if force:
            for part in folder.glob(PART_GLOB):
                part.unlink()

    def done_ids(self) -> set[str]:
        done: set[str] = set()
        for part in sorted(self.folder.glob(PART_GLOB)):
            done.update(pq.read_table(part, columns=["id"]).column("id").to_pylist())
        return done

    def write(
        self,
        ids: pa.Array,
        labels: npt.NDArray[np.object_],
        probabilities: npt.NDArray[np.float32],
        version: str,
    ) -> None:
        columns: dict[str, pa.Array] = {"id": ids, "label": pa.array(labels, pa.string())}
        for index, name in enumerate(self.classes):
            columns[f"p_{name}"] = pa.array(probabilities[:, index])
        columns["model_version"] = _constant(version, len(ids))
        columns["predicted_at"] = _constant(datetime.now(UTC).isoformat(), len(ids))
        name = f"part-{datetime.now(UTC):%Y%m%d%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
        temporary = self.folder / f".{name}"
        with temporary.open("wb") as written:  # a file object: pyarrow resolves no filesystem
            pq.write_table(pa.table(columns), written)
            written.flush()
            os.fsync(written.fileno())
        temporary.replace(self.folder / name)  # the whole chunk appears at once


def predict_to_parts(
    model: LoadedModel,
    source: str,
    output: Path,
    *,
    id_column: str = "id",
    chunk_rows: int = 10_000,
    force: bool = False,
    on_chunk: Callable[[BatchResult], None] = lambda result: None,
    on_prediction: OnPrediction | None = None,
) -> BatchResult:
    sink = PartsSink(output, model.labels, force)
    done = sink.done_ids()
    result = BatchResult()
    features = model.metadata.feature_names
    unreadable: dict[str, str] = {}
    for batch in _batches(source, id_column, features, chunk_rows, unreadable):
        ids = pc.cast(batch.column(id_column), pa.string())
        total = len(ids)
        result.read += total + len(unreadable)
        result.rejected.update(unreadable)
        unreadable.clear()
        # a Python set: arrow's is_in rebuilds its hash table from the whole value set
        # on every call, which grows with every chunk written
        if done:
            fresh = pa.array([i not in done for i in ids.to_pylist()], pa.bool_())
            batch, ids = batch.filter(fresh), ids.filter(fresh)
        result.skipped += total - len(ids)
        if len(ids):
            first = _first_of_each(ids)
            if len(first) != len(ids):
                result.skipped += len(ids) - len(first)
                batch, ids = batch.take(first), ids.take(first)
            matrix = _features(batch, features)
            if matrix is None:  # some row is bad: sort them out one by one
                chunk = Chunk(ids.to_pylist(), _text_rows(batch, features))
                good, matrix, rejected = to_matrix(chunk, len(features))
                result.rejected.update(rejected)
                ids = pa.array(good, pa.string())
            if len(ids):
                labels, probabilities = model.predict_arrays(matrix)
                sink.write(ids, labels, probabilities, model.version)
                done.update(ids.to_pylist())
                result.predicted += len(ids)
                if on_prediction is not None:
                    on_prediction(
                        ids.to_pylist(), matrix, Prediction([str(v) for v in labels], probabilities)
                    )
        on_chunk(result)
    return result
