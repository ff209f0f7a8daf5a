"""Batch prediction throughput: `predict_batch` end to end vs a bare onnxruntime
`session.run` loop over the same chunks already in memory, on the same model, for
both paths: row by row (CSV to SQLite, 10,000-row chunks) and columnar (CSV or
Parquet to Parquet parts with pyarrow, in its default chunks: 100,000 iris rows).
Prints rows per second and ratios. Both sides run a few rounds,
interleaved, and the best of each counts.

The bare loop is fastest in smaller chunks than a part should hold (its inputs and
outputs stay in the CPU's caches), so each round also times it over a range of chunk
sizes, and the ratio to the fastest of them is printed beside the ratio at the same
chunks: the stricter reference.

The bare loop runs the registered graph as it is, asking for the class names as
strings; the batch path asks the same classifier for class indices instead
(`mlpatterns.serving.batch.class_indices`). The cost of the names is printed apart, as a
bare loop with indices, so that the ratio can be read against either.

    .venv/bin/python benchmarks/batch_throughput.py MODEL_FOLDER [--rows 1000000]
        [--rounds 5] [--cases sqlite csv parquet sorted shuffled] [--compression snappy]

MODEL_FOLDER is a fetched model (`mlpatterns fetch-model models:/iris@candidate DIR`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlpatterns.serving.batch import columnar_chunk_rows, predict_batch
from mlpatterns.serving.batch.class_indices import with_class_indices
from mlpatterns.serving.model import LoadedModel, new_session

BARE_CHUNKS = (10_000, 25_000, 50_000, 100_000)
CASES = {  # name: (what it shows, the input file, the output's suffix)
    "sqlite": ("CSV -> SQLite, row by row", "rows.csv", ".db"),
    "csv": ("CSV -> Parquet parts", "rows.csv", ".parquet"),
    "parquet": ("Parquet -> Parquet parts", "rows.parquet", ".parquet"),
    "sorted": ("Parquet, ids sorted -> parts", "sorted.parquet", ".parquet"),
    "shuffled": ("Parquet, ids shuffled -> parts", "shuffled.parquet", ".parquet"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--columnar-chunk", type=int, help="default: predict_batch's own")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--compression", help="the Parquet parts' codec (default: predict_batch's own, none)"
    )
    parser.add_argument(
        "--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES), metavar="CASE"
    )
    args = parser.parse_args()
    model = LoadedModel(args.model)
    columnar_chunk = args.columnar_chunk or columnar_chunk_rows(model.n_features)
    rng = np.random.default_rng(0)
    data = rng.uniform(0.1, 7.9, size=(args.rows, model.n_features)).astype(np.float32)

    ids = [f"r{i}" for i in range(args.rows)]  # as text, "r10" sorts before "r2"
    with tempfile.TemporaryDirectory() as folder:
        files = write_inputs(Path(folder), ids, data, model.metadata.feature_names)
        print(
            f"{args.rows:,} rows, model {model.metadata.ref}; {args.rounds} rounds of "
            "(bare loop, predict_batch into a new output), best of each; "
            f"Parquet parts compressed with {args.compression or 'none (the default)'}"
        )
        # the first run in a process imports what the later ones find loaded
        predict_batch(model, str(files["sorted.parquet"]), Path(folder) / "warm.parquet")
        for case in (case for case in CASES if case in args.cases):
            name, source, output = CASES[case]
            size = args.chunk if output == ".db" else columnar_chunk
            rounds = []
            for _ in range(args.rounds):
                # the kernel writing back earlier outputs would slow whichever came next
                os.sync()
                bare = {chunk: bare_loop(model, data, chunk) for chunk in {size, *BARE_CHUNKS}}
                target = Path(folder) / f"out{output}"
                os.sync()
                started = time.perf_counter()
                compression = args.compression if output == ".parquet" else None
                result = predict_batch(
                    model, str(files[source]), target, chunk_rows=size, compression=compression
                )
                rounds.append(Round(bare, result.predicted / (time.perf_counter() - started)))
                assert result.predicted == args.rows, result
                remove(target)
            report(name, size, rounds)
        indexed = with_class_indices(model.checked_bytes)
        if indexed is not None:
            session = new_session(indexed.model, model.threads)
            rate = max(bare_loop(model, data, columnar_chunk, session) for _ in range(3))
            print(f"  for reference, a bare loop asking for class indices: {rate:,.0f} rows/s")


def write_inputs(
    folder: Path, ids: list[str], data: np.ndarray, features: list[str]
) -> dict[str, Path]:
    """The same rows as CSV, as Parquet, as Parquet with ids in sorted order (which
    the columnar path checks in one comparison per row instead of deciding them all at
    once), and as Parquet with the rows shuffled (a table in hash order: "r0", "r1",
    ... are nearly in text order, which flatters any sort)."""
    columns = {name: pa.array(data[:, index]) for index, name in enumerate(features)}
    table = pa.table({"id": pa.array(ids), **columns})
    numbered = pa.table({"id": pa.array([f"r{i:09d}" for i in range(len(ids))]), **columns})
    shuffled = table.take(np.random.default_rng(1).permutation(len(ids)))
    files = {
        "rows.csv": folder / "rows.csv",
        "rows.parquet": folder / "rows.parquet",
        "sorted.parquet": folder / "sorted.parquet",
        "shuffled.parquet": folder / "shuffled.parquet",
    }
    pa_csv.write_csv(table, files["rows.csv"])
    pq.write_table(table, files["rows.parquet"])
    pq.write_table(numbered, files["sorted.parquet"])
    pq.write_table(shuffled, files["shuffled.parquet"])
    return files


@dataclass(frozen=True)
class Round:
    bare: dict[int, float]  # rows/s of the bare loop by chunk size
    ours: float


def report(name: str, size: int, rounds: list[Round]) -> None:
    """Best of each side, and the ratios taken within each round (seconds apart, so
    the machine's drift touches both alike): to the bare loop over the same chunks,
    and to the bare loop over whichever chunk size was fastest in that round."""
    best_bare = {chunk: max(r.bare[chunk] for r in rounds) for chunk in rounds[0].bare}
    fastest = max(best_bare, key=best_bare.__getitem__)
    ours = max(r.ours for r in rounds)
    same = sorted(r.ours / r.bare[size] for r in rounds)
    strict = sorted(r.ours / max(r.bare.values()) for r in rounds)
    print(
        f"  chunks of {size:,}: bare session.run loop {best_bare[size]:12,.0f} rows/s; "
        f"fastest in chunks of {fastest:,}: {best_bare[fastest]:,.0f} rows/s"
    )
    print(
        f"  predict_batch, {name:31} {ours:12,.0f} rows/s  {ours / best_bare[size]:6.1%} of "
        f"bare at the same chunks (within rounds: {_spread(same)}), "
        f"{ours / best_bare[fastest]:.1%} of the fastest (within rounds: {_spread(strict)})"
    )


def _spread(ratios: list[float]) -> str:
    return f"median {statistics.median(ratios):.1%}, {ratios[0]:.1%} to {ratios[-1]:.1%}"


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
