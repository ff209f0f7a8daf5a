"""The row-by-row path: CSV, Parquet or a SQLite table in, a SQLite table or a CSV
file out, a chunk of rows committed together (one transaction, or one synced append).
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson

from mlpatterns.serving.batch.base import (
    BatchInputError,
    BatchResult,
    Chunk,
    OnPrediction,
    as_text_rows,
    rejected_without_id,
    to_matrix,
)
from mlpatterns.serving.model import LoadedModel, Prediction

__all__ = ["CsvSink", "PredictionSink", "SqliteSink", "open_sink", "predict_rows", "read_chunks"]


def _chunk(rows: Iterable[tuple[str | None, list[str]]]) -> Chunk:
    chunk = Chunk([], [])
    for position, (row_id, row) in enumerate(rows):
        if row_id is None:
            chunk.without_id.append(position)
        else:
            chunk.ids.append(row_id)
            chunk.rows.append(row)
    return chunk


def _csv_chunks(path: Path, id_column: str, features: list[str], size: int) -> Iterator[Chunk]:
    with path.open(newline="") as source:
        reader = csv.reader(source)
        header = next(reader, [])
        missing = [c for c in (id_column, *features) if c not in header]
        if missing:
            raise BatchInputError(f"{path} lacks the columns {missing}; its header is {header}")
        id_at, at = header.index(id_column), [header.index(f) for f in features]
        rows: list[tuple[str | None, list[str]]] = []
        for record in reader:
            row_id = (record[id_at] if len(record) > id_at else "") or None
            if len(record) != len(header):
                # rejected when converted: wrong field count
                rows.append((row_id or f"<line {reader.line_num}>", []))
            else:
                rows.append((row_id, [record[i] for i in at]))
            if len(rows) == size:
                yield _chunk(rows)
                rows = []
        if rows:
            yield _chunk(rows)


def _sqlite_chunks(spec: str, id_column: str, features: list[str], size: int) -> Iterator[Chunk]:
    path, table = spec.rsplit(":", 1)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        names = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
        missing = [c for c in (id_column, *features) if c not in names]
        if missing:
            raise BatchInputError(f"{spec} lacks the columns {missing}; it has {names}")
        columns = ", ".join(f'"{c}"' for c in (id_column, *features))
        cursor = db.execute(f'SELECT {columns} FROM "{table}" ORDER BY rowid')  # noqa: S608
        while batch := cursor.fetchmany(size):
            yield _chunk((_id_text(r[0]), [str(v) for v in r[1:]]) for r in batch)


def _parquet_chunks(path: Path, id_column: str, features: list[str], size: int) -> Iterator[Chunk]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BatchInputError("reading Parquet needs pyarrow: pip install pyarrow") from None
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=size, columns=[id_column, *features]):
        table = batch.to_pydict()
        rows = as_text_rows([table[f] for f in features])
        yield _chunk(zip(map(_id_text, table[id_column]), rows, strict=True))


def _id_text(value: object) -> str | None:
    return None if value is None else str(value)


def read_chunks(source: str, id_column: str, features: list[str], size: int) -> Iterator[Chunk]:
    if source.endswith((".db", ".sqlite")) or ".db:" in source or ".sqlite:" in source:
        if ":" not in Path(source).name:
            raise BatchInputError(f"name the table of {source}: {source}:<table>")
        database = source.rsplit(":", 1)[0]
        if not Path(database).exists():
            raise BatchInputError(f"{database} does not exist")
        return _sqlite_chunks(source, id_column, features, size)
    path = Path(source)
    if not path.exists():
        raise BatchInputError(f"{source} does not exist")
    if path.suffix == ".parquet":
        return _parquet_chunks(path, id_column, features, size)
    if path.suffix == ".csv":
        return _csv_chunks(path, id_column, features, size)
    raise BatchInputError(f"{source}: use a .csv, a .parquet or a SQLite <file>.db:<table>")


class PredictionSink(Protocol):
    def done_ids(self) -> set[str]: ...

    def write(self, ids: list[str], prediction: Prediction, version: str) -> None: ...

    def close(self) -> None: ...


class SqliteSink:
    def __init__(self, path: Path, classes: list[str], force: bool) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS predictions (id TEXT PRIMARY KEY, label TEXT NOT NULL, "
            "probabilities TEXT NOT NULL, model_version TEXT NOT NULL, predicted_at TEXT NOT NULL)"
        )
        if force:
            self.db.execute("DELETE FROM predictions")
        self.db.commit()
        self.classes = classes

    def done_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT id FROM predictions")}

    def write(self, ids: list[str], prediction: Prediction, version: str) -> None:
        now = datetime.now(UTC).isoformat()
        probabilities = [
            orjson.dumps(dict(zip(self.classes, row, strict=True))).decode()
            for row in prediction.probabilities
        ]
        with self.db:  # one transaction: the whole chunk or nothing
            self.db.executemany(
                "INSERT INTO predictions VALUES (?, ?, ?, ?, ?)",
                zip(
                    ids,
                    prediction.labels,
                    probabilities,
                    [version] * len(ids),
                    [now] * len(ids),
                    strict=True,
                ),
            )

    def close(self) -> None:
        self.db.close()


class CsvSink:
    def __init__(self, path: Path, classes: list[str], force: bool) -> None:
        self.path = path
        self.header = ["id", "label", *(f"p_{c}" for c in classes), "model_version"]
        if force or not path.exists() or path.stat().st_size == 0:
            path.write_text(",".join(self.header) + "\n")
        else:
            _drop_partial_last_line(path)  # a crash mid-append leaves half a line
        self._file = path.open("a", newline="")

    def done_ids(self) -> set[str]:
        with self.path.open(newline="") as existing:
            reader = csv.reader(existing)
            next(reader, None)
            return {row[0] for row in reader if row}

    def write(self, ids: list[str], prediction: Prediction, version: str) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row_id, label, probabilities in zip(
            ids, prediction.labels, prediction.probabilities, strict=True
        ):
            writer.writerow([row_id, label, *(f"{p:.7g}" for p in probabilities), version])
        self._file.write(buffer.getvalue())
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _drop_partial_last_line(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


def open_sink(output: Path, classes: list[str], force: bool) -> PredictionSink:
    if output.suffix in (".db", ".sqlite"):
        return SqliteSink(output, classes, force)
    if output.suffix == ".csv":
        return CsvSink(output, classes, force)
    raise BatchInputError(
        f"{output}: write predictions to a .db/.sqlite file, a .csv file or a .parquet folder"
    )


def predict_rows(
    model: LoadedModel,
    source: str,
    output: Path,
    *,
    id_column: str,
    chunk_rows: int,
    force: bool,
    on_chunk: Callable[[BatchResult], None],
    on_prediction: OnPrediction | None,
) -> BatchResult:
    features = model.metadata.feature_names
    chunks = read_chunks(source, id_column, features, chunk_rows)  # refused: nothing written
    sink = open_sink(output, model.labels, force)
    done = sink.done_ids()
    result = BatchResult()
    try:
        for chunk in chunks:
            first_row = result.read + 1
            result.read += chunk.read
            result.rejected.update(rejected_without_id(first_row + p for p in chunk.without_id))
            fresh = [i for i, row_id in enumerate(chunk.ids) if row_id not in done]
            result.skipped += len(chunk.ids) - len(fresh)
            if not fresh:
                on_chunk(result)
                continue
            chunk = Chunk([chunk.ids[i] for i in fresh], [chunk.rows[i] for i in fresh])
            ids, matrix, rejected = to_matrix(chunk, model.n_features)
            result.rejected.update(rejected)
            first: dict[str, int] = {}
            for index, row_id in enumerate(ids):  # an id repeated in the input: predicted once
                first.setdefault(row_id, index)
            if len(first) != len(ids):
                result.skipped += len(ids) - len(first)
                ids, matrix = list(first), matrix[list(first.values())]
            if ids:
                prediction = model.predict(matrix)
                sink.write(ids, prediction, model.version)
                done.update(ids)
                result.predicted += len(ids)
                if on_prediction is not None:
                    on_prediction(ids, matrix, prediction)
            on_chunk(result)
    finally:
        sink.close()
    return result
