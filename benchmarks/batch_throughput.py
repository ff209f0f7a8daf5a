"""Batch prediction throughput: `predict_batch` end to end vs a bare onnxruntime
`session.run` loop over the same chunks already in memory, on the same model, for
both paths: row by row (CSV to SQLite, 10,000-row chunks) and columnar (CSV or
Parquet to Parquet parts with pyarrow, 100,000-row chunks). Prints rows per second
and ratios. Both sides run a few rounds, interleaved, and the best of each counts.

The bare loop runs the registered graph as it is, asking for the class names as
strings; the batch path asks the same classifier for class indices instead
(`mlpatterns.serving.class_indices`). The cost of the names is printed apart, as a
bare loop with indices, so that the ratio can be read against either.

    .venv/bin/python benchmarks/batch_throughput.py MODEL_FOLDER [--rows 1000000]

MODEL_FOLDER is a fetched model (`mlpatterns fetch-model models:/iris@candidate DIR`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlpatterns.serving.batch import predict_batch
from mlpatterns.serving.class_indices import with_class_indices
from mlpatterns.serving.model import LoadedModel, new_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--columnar-chunk", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model = LoadedModel(args.model)
    rng = np.random.default_rng(0)
    data = rng.uniform(0.1, 7.9, size=(args.rows, model.n_features)).astype(np.float32)

    ids = [f"r{i}" for i in range(args.rows)]  # as text, "r10" sorts before "r2"
    with tempfile.TemporaryDirectory() as folder:
        files = write_inputs(Path(folder), ids, data, model.metadata.feature_names)
        print(
            f"{args.rows:,} rows, model {model.metadata.ref}; {args.rounds} rounds of "
            "(bare loop, predict_batch into a new output), best of each"
        )
        for name, source, size in (
            ("CSV -> SQLite, row by row", "rows.csv", args.chunk),
            ("CSV -> Parquet parts", "rows.csv", args.columnar_chunk),
            ("Parquet -> Parquet parts", "rows.parquet", args.columnar_chunk),
            ("Parquet, ids sorted -> parts", "sorted.parquet", args.columnar_chunk),
        ):
            output = ".db" if "SQLite" in name else ".parquet"
            rounds = []
            for _ in range(args.rounds):
                # the kernel writing back earlier outputs would slow whichever came next
                os.sync()
                bare = bare_loop(model, data, size)
                target = Path(folder) / f"out{output}"
                os.sync()
                started = time.perf_counter()
                result = predict_batch(model, str(files[source]), target, chunk_rows=size)
                rounds.append((bare, result.predicted / (time.perf_counter() - started)))
                assert result.predicted == args.rows, result
                remove(target)
            report(name, size, rounds)
        indexed = with_class_indices(model.checked_bytes)
        if indexed is not None:
            session = new_session(indexed.model, model.threads)
            rate = max(bare_loop(model, data, args.columnar_chunk, session) for _ in range(3))
            print(f"  for reference, a bare loop asking for class indices: {rate:,.0f} rows/s")


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


def report(name: str, size: int, rounds: list[tuple[float, float]]) -> None:
    """Best of each side, and the ratio taken within each round (seconds apart, so
    the machine's drift touches both alike)."""
    bare, ours = (max(side) for side in zip(*rounds, strict=True))
    within = sorted(o / b for b, o in rounds)
    print(f"  chunks of {size:,}: bare session.run loop {bare:12,.0f} rows/s")
    print(
        f"  predict_batch, {name:31} {ours:12,.0f} rows/s  {ours / bare:6.1%} of bare "
        f"(within rounds: median {statistics.median(within):.1%}, "
        f"{within[0]:.1%} to {within[-1]:.1%})"
    )


def remove(output: Path) -> None:
    if output.is_dir():
        shutil.rmtree(output)
    else:
        output.unlink()


def bare_loop(
    model: LoadedModel, data: np.ndarray, size: int, session: ort.InferenceSession | None = None
) -> float:
    run = (session or model.session).run
    started = time.perf_counter()
    for start in range(0, len(data), size):
        run(["label", "probabilities"], {model.input_name: data[start : start + size]})
    return len(data) / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
