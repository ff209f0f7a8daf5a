"""Batch prediction throughput: `predict_batch` end to end vs a bare onnxruntime
`session.run` loop over the same chunks already in memory, on the same model, for
both paths: row by row (CSV to SQLite, 10,000-row chunks) and columnar (CSV to
Parquet parts with pyarrow, 100,000-row chunks). Prints rows per second and ratios.

    .venv/bin/python benchmarks/batch_throughput.py MODEL_FOLDER [--rows 1000000]

MODEL_FOLDER is a fetched model (`mlpatterns fetch-model models:/iris@candidate DIR`).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

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

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "rows.csv"
        with source.open("w", newline="") as sink:
            writer = csv.writer(sink)
            writer.writerow(["id", *model.metadata.feature_names])
            writer.writerows([f"r{i}", *(f"{v:.3f}" for v in row)] for i, row in enumerate(data))

        print(f"{args.rows:,} rows, model {model.metadata.ref}")
        for name, output, size in (
            ("CSV -> SQLite, row by row", "out.db", args.chunk),
            ("CSV -> Parquet parts, columnar", "out.parquet", args.columnar_chunk),
        ):
            bare = bare_loop(model, data, size)
            started = time.perf_counter()
            result = predict_batch(model, str(source), Path(folder) / output, chunk_rows=size)
            ours = result.predicted / (time.perf_counter() - started)
            print(f"  chunks of {size:,}: bare session.run loop {bare:12,.0f} rows/s")
            print(f"  predict_batch, {name:31} {ours:12,.0f} rows/s  {ours / bare:6.1%} of bare")


def bare_loop(model: LoadedModel, data: np.ndarray, size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(data), size):
        model.session.run(
            ["label", "probabilities"], {model.input_name: data[start : start + size]}
        )
    return len(data) / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
