"""Batch prediction throughput: `predict_batch` end to end (read CSV, convert, predict,
commit to SQLite) vs a bare onnxruntime `session.run` loop over the same chunks
already in memory, on the same model. Prints rows per second and the ratio.

    .venv/bin/python benchmarks/batch_throughput.py MODEL_FOLDER [--rows 1000000] [--chunk 10000]

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

        started = time.perf_counter()
        chunks = [data[i : i + args.chunk] for i in range(0, args.rows, args.chunk)]
        for chunk in chunks:
            model.session.run(["label", "probabilities"], {model.input_name: chunk})
        bare = args.rows / (time.perf_counter() - started)

        started = time.perf_counter()
        result = predict_batch(model, str(source), Path(folder) / "out.db", chunk_rows=args.chunk)
        ours = result.predicted / (time.perf_counter() - started)

    print(f"{args.rows:,} rows, chunks of {args.chunk:,}, model {model.metadata.ref}")
    print(f"  bare session.run loop (data in memory): {bare:12,.0f} rows/s")
    print(f"  predict_batch (CSV -> SQLite):          {ours:12,.0f} rows/s")
    print(f"  ratio:                                  {ours / bare:12.1%}")


if __name__ == "__main__":
    main()
