"""Training benchmark: batch_training through kfp's local runner vs the same step
functions called directly in one process. Prints wall times and the ratio.

    .venv/bin/python benchmarks/training_overhead.py [--repeat 3] [--dataset iris] [--model logreg]

Both sides do the same work (load, validate, split, train, evaluate, export,
register) on a fresh registry each repetition; kfp's cache is off so that every
step runs. The difference is kfp's price: one Python process per step, artifacts
passed through files, its executor and orchestration.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable


def timed(run: Callable[[], str], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as home:
            os.environ["MLPATTERNS_HOME"] = home
            started = time.perf_counter()
            version = run()
            seconds.append(time.perf_counter() - started)
            assert version, "the benchmark run registered nothing"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dataset", default="iris")
    parser.add_argument("--model", default="logreg")
    args = parser.parse_args()

    from mlpatterns.training.kfp_local import run_pipeline
    from mlpatterns.training.steps import TrainingRequest, run_directly

    request = TrainingRequest(dataset=args.dataset, name="bench", model_type=args.model)
    arguments = {"dataset": args.dataset, "name": "bench", "model_type": args.model}
    run_directly(request)  # warm the imports so the direct side is not charged for them
    direct = timed(lambda: run_directly(request), args.repeat)
    kfp = timed(lambda: run_pipeline("batch_training", arguments, caching=False), args.repeat)

    d, k = statistics.median(direct), statistics.median(kfp)
    print(f"batch_training on {args.dataset} with {args.model}, median of {args.repeat}")
    print(f"  direct (same functions, one process): {d:8.3f} s")
    print(f"  kfp local SubprocessRunner:           {k:8.3f} s")
    print(f"  ratio kfp/direct:                     {k / d:8.1f}x  (overhead {k - d:.1f} s)")


if __name__ == "__main__":
    main()
