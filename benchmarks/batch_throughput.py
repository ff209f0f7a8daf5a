"""Batch prediction throughput: `predict_batch` end to end vs a bare onnxruntime
`session.run` loop over the same chunks already in memory, on the same model, for
both paths: row by row (CSV to SQLite, 10,000-row chunks) and columnar (CSV or
Parquet to Parquet parts with pyarrow, 100,000-row chunks). Prints rows per second
and ratios.

    .venv/bin/python benchmarks/batch_throughput.py MODEL_FOLDER [--rows 1000000]

MODEL_FOLDER is a fetched model (`mlpatterns fetch-model models:/iris@candidate DIR`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlpatterns.serving.batch import predict_batch
from mlpatterns.serving.model import LoadedModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--columnar-chunk", type=int, default=100_000)
    args = parser.parse_args()
    model = LoadedModel(args.model)
    rng = np.random.default_rng(0)
    data = rng.uniform(0.1, 7.9, size=(args.rows, model.n_features)).astype(np.float32)

    ids = [f"r{i}" for i in range(args.rows)]  # as text, "r10" sorts before "r2"
    with tempfile.TemporaryDirectory() as folder:
        files = write_inputs(Path(folder), ids, data, model.metadata.feature_names)
        print(f"{args.rows:,} rows, model {model.metadata.ref}; bare: best of 3 loops")
        for name, source, output, size in (
            ("CSV -> SQLite, row by row", "rows.csv", "out.db", args.chunk),
            ("CSV -> Parquet parts", "rows.csv", "a.parquet", args.columnar_chunk),
            ("Parquet -> Parquet parts", "rows.parquet", "b.parquet", args.columnar_chunk),
            ("Parquet, ids sorted -> parts", "sorted.parquet", "c.parquet", args.columnar_chunk),
        ):
            bare = bare_loop(model, data, size)
            started = time.perf_counter()
            result = predict_batch(
                model, str(files[source]), Path(folder) / output, chunk_rows=size
            )
            ours = result.predicted / (time.perf_counter() - started)
            assert result.predicted == args.rows, result
            print(f"  chunks of {size:,}: bare session.run loop {bare:12,.0f} rows/s")
            print(f"  predict_batch, {name:31} {ours:12,.0f} rows/s  {ours / bare:6.1%} of bare")


def write_inputs(
    folder: Path, ids: list[str], data: np.ndarray, features: list[str]
) -> dict[str, Path]:
    """The same rows as CSV, as Parquet, and as Parquet with ids in sorted order (which
    the columnar path checks in one comparison per row instead of sorting the ids)."""
    columns = {name: pa.array(data[:, index]) for index, name in enumerate(features)}
    table = pa.table({"id": pa.array(ids), **columns})
    numbered = pa.table({"id": pa.array([f"r{i:09d}" for i in range(len(ids))]), **columns})
    files = {
        "rows.csv": folder / "rows.csv",
        "rows.parquet": folder / "rows.parquet",
        "sorted.parquet": folder / "sorted.parquet",
    }
    pa_csv.write_csv(table, files["rows.csv"])
    pq.write_table(table, files["rows.parquet"])
    pq.write_table(numbered, files["sorted.parquet"])
    return files


def bare_loop(model: LoadedModel, data: np.ndarray, size: int, runs: int = 3) -> float:
    """The best of `runs`: the machine's speed drifts, and the ratio should not flatter us."""
    best = 0.0
    for _ in range(runs):
        started = time.perf_counter()
        for start in range(0, len(data), size):
            model.session.run(
                ["label", "probabilities"], {model.input_name: data[start : start + size]}
            )
        best = max(best, len(data) / (time.perf_counter() - started))
    return best


if __name__ == "__main__":
    main()
