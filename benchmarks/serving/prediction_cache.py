"""The prediction cache's cost and gain, side by side: the model server with its cache
(`--cache-entries`) and without, each asked the same input again and again (every
request after the first a hit) and a different input each time (every one a miss).

    .venv/bin/python benchmarks/serving/prediction_cache.py MODEL_DIR [--duration 8]
        [--connections 16] [--rounds 3]

Servers pinned to core 0, wrk to core 1, the serving benchmark's Open Inference
Protocol request, prediction logging off. Prints requests/s, p50 and the server's CPU
per request (from /proc), the median of the rounds, and the ratios: a hit against a
prediction, and a miss against no cache at all (what the lookup and the store cost).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BODY, cpu_seconds, free_port, load, started, write_wrk_script

MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
SERVERS = {"cache": ("--cache-entries", "1000000"), "no cache": ()}


def write_distinct_script(folder: Path) -> Path:
    """The same request, its row changed on every request (a counter in the first
    value): no two requests of a run are identical."""
    [tensor] = BODY["inputs"]  # type: ignore[index]
    open_tensor = json.dumps({k: v for k, v in tensor.items() if k != "data"})[:-1]
    rest = ", ".join(str(v) for v in tensor["data"][1:])
    script = folder / "distinct.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        "counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        f"  local row = (5 + counter / 1e6) .. ', {rest}'\n"
        f"  local body = '{{\"inputs\": [{open_tensor}, \"data\": [' .. row .. ']}}]}}'\n"
        "  return wrk.format(nil, nil, nil, body)\n"
        "end\n"
    )
    return script


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        scripts = {
            "same input": write_wrk_script(Path(folder)),
            "distinct inputs": write_distinct_script(Path(folder)),
        }
        servers = {}
        for name, options in SERVERS.items():
            port = free_port()
            argv = [MLPATTERNS, "serve", "model", "--model", str(args.model_dir),
                    "--port", str(port), "--no-log-predictions", *options]  # fmt: skip
            servers[name] = stack.enter_context(started(name, argv, {}, port))
        for _ in range(args.rounds):  # alternating, so a drifting machine shifts all alike
            for name, (url, pid) in servers.items():
                for inputs, script in scripts.items():
                    load(url, args.connections, 1, script)  # warm up (and fill the cache)
                    before = cpu_seconds(pid)
                    rps, p50, _ = load(url, args.connections, args.duration, script)
                    cpu = (cpu_seconds(pid) - before) / (rps * args.duration) * 1e6
                    results.setdefault((name, inputs), []).append((rps, p50, cpu))
    print(f"{args.connections} connections, {args.duration} s, median of {args.rounds} rounds")
    medians = {
        key: tuple(statistics.median(run[i] for run in runs) for i in range(3))
        for key, runs in results.items()
    }
    for (name, inputs), (rps, p50, cpu) in medians.items():
        print(f"  {name:9} {inputs:16} {rps:9,.0f} req/s  p50 {p50:5.2f} ms  {cpu:5.1f} us/req")
    hit, predicted = medians[("cache", "same input")], medians[("no cache", "same input")]
    miss, plain = medians[("cache", "distinct inputs")], medians[("no cache", "distinct inputs")]
    print(
        f"  a hit against a prediction: {hit[0] / predicted[0]:.2f}x throughput, "
        f"{hit[2] / predicted[2]:.2f}x CPU per request"
    )
    print(
        f"  a miss against no cache: {miss[0] / plain[0]:.2f}x throughput, "
        f"{miss[2] / plain[2]:.2f}x CPU per request"
    )


if __name__ == "__main__":
    main()
