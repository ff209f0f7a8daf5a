"""Batch prediction, one source tree against another, side by side: each round runs
the same job with every tree (in rotating order, each in a fresh process that warms
up on a small file first), on the same inputs, and prints per case the best time of
each tree and, for each tree after the first, the median and range of its speed
relative to the first within a round (seconds apart, so the machine's drift touches
both alike).

A tree is a `platform` folder: this checkout's, a `git worktree` of an older commit,
or a copy with one optimisation taken out, which is how the batch path's machinery
was weighed (benchmarks/README.md).

    .venv/bin/python benchmarks/batch_compare.py MODEL_DIR new=platform \\
        old=/tmp/old/platform [--rows 1000000] [--rounds 6] [--cases numeric sorted ...]

Cases: numeric (Parquet, ids "r0", "r1", ..., which as text are out of order),
sorted (ids in key order), shuffled (rows in random order), csv (the numeric rows as
CSV), rerun (the shuffled file, half of it done by a first run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlpatterns.serving.model import LoadedModel

CASES = ("numeric", "sorted", "shuffled", "csv", "rerun")
JOB = r"""
import sys, time
from pathlib import Path
from mlpatterns.serving.batch import predict_batch
from mlpatterns.serving.model import LoadedModel
model = LoadedModel(Path(sys.argv[1]))
source, output, warm, half = sys.argv[2:6]
predict_batch(model, warm, Path(output + ".warm.parquet"))
if half:
    predict_batch(model, half, Path(output))
started = time.perf_counter()
result = predict_batch(model, source, Path(output))
print(time.perf_counter() - started, result.predicted)
"""


def write_inputs(folder: Path, model: LoadedModel, rows: int) -> dict[str, Path]:
    names = model.metadata.feature_names
    rng = np.random.default_rng(0)
    data = rng.uniform(0.1, 7.9, size=(rows, len(names))).astype(np.float32)
    columns = {name: pa.array(data[:, index]) for index, name in enumerate(names)}
    numeric = pa.table({"id": pa.array([f"r{i}" for i in range(rows)]), **columns})
    order = rng.permutation(rows)
    files = {
        "numeric": folder / "numeric.parquet",
        "sorted": folder / "sorted.parquet",
        "shuffled": folder / "shuffled.parquet",
        "csv": folder / "numeric.csv",
        "half": folder / "half.parquet",
        "warm": folder / "warm.parquet",
    }
    pq.write_table(numeric, files["numeric"])
    sorted_ids = pa.array([f"r{i:09d}" for i in range(rows)])
    pq.write_table(pa.table({"id": sorted_ids, **columns}), files["sorted"])
    pq.write_table(numeric.take(order), files["shuffled"])
    pa_csv.write_csv(numeric, files["csv"])
    pq.write_table(numeric.take(order[: rows // 2]), files["half"])
    pq.write_table(numeric.slice(0, 1_000), files["warm"])
    return files


def run_job(tree: Path, model: Path, files: dict[str, Path], case: str, output: Path) -> float:
    for stale in (output, output.with_name(output.name + ".warm.parquet")):
        shutil.rmtree(stale, ignore_errors=True)
    os.sync()  # the kernel writing back an earlier output would slow whichever came next
    source = files["shuffled" if case == "rerun" else case]
    half = str(files["half"]) if case == "rerun" else ""
    done = subprocess.run(
        [sys.executable, "-c", JOB, str(model), str(source), str(output), str(files["warm"]),
         half],
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return float(done.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("trees", nargs="+", metavar="NAME=PLATFORM_DIR")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    args = parser.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.trees)}
    names = list(trees)
    model = LoadedModel(args.model)
    print(f"{args.rows:,} rows, model {model.metadata.ref}, {args.rounds} rounds; trees: "
          + ", ".join(f"{name}={path}" for name, path in trees.items()))  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        files = write_inputs(Path(folder), model, args.rows)
        for case in args.cases:
            times: dict[str, list[float]] = {name: [] for name in names}
            for round_number in range(args.rounds):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    output = Path(folder) / f"out-{name}.parquet"
                    times[name].append(run_job(trees[name], args.model, files, case, output))
            line = f"{case:9}" + "".join(f"  {n} {min(t) * 1e3:,.0f} ms" for n, t in times.items())
            for name in names[1:]:
                ratios = sorted(a / b for a, b in zip(times[names[0]], times[name], strict=True))
                line += (
                    f"; {name} speed / {names[0]}: median {statistics.median(ratios):.2f} "
                    f"({ratios[0]:.2f} to {ratios[-1]:.2f})"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
