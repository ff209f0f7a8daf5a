"""Multiple-stage prediction: does the heavy stage touch the light answer's latency?
The gateway in front of a light model server, measured at a fixed request rate with
vegeta (the loading-test pattern's generator) in three set-ups, side by side:

    light alone          the light version, no follow-up
    + heavy follow-up    every request also queued for the heavy version's worker
    + heavy stalled      the same, its worker stopped (SIGSTOP): jobs only pile up

    .venv/bin/python benchmarks/serving/multiple_stage.py LIGHT_DIR HEAVY_DIR
        [--rate 200] [--duration 10] [--rounds 3]

LIGHT_DIR and HEAVY_DIR are fetched models (`mlpatterns fetch-model`). The gateway
and the light server run on core 0; the heavy API, its worker and vegeta on core 1,
the way a heavy stage runs on its own node. Prints the light answers' p50, p90 and
p99 (the median of the rounds) and each set-up's against light alone.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port, started

from mlpatterns.api.loadtest import LoadTest
from mlpatterns.loadtest import run

MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
ROW = [5.1, 3.5, 1.4, 0.2]
CASES = ("light alone", "+ heavy follow-up", "+ heavy stalled")


@contextmanager
def heavy_stage(model: Path, folder: Path) -> Iterator[tuple[str, int]]:
    """The heavy version's async API (jobs named by request id) and one worker, on
    core 1, sharing a SQLite queue; its URL and the worker's process id."""
    port = free_port()
    queue = ("--queue", f"sqlite:///{folder / 'jobs.db'}")
    env = {**os.environ, "MLPATTERNS_HOME": str(folder / "home")}
    common = ["--model", str(model), *queue]
    worker = subprocess.Popen(
        ["taskset", "-c", "1", MLPATTERNS, "serve", "worker", *common, "--no-log-predictions"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api_argv = ["taskset", "-c", "1", MLPATTERNS, "serve", "async-api", *common,
                "--port", str(port), "--job-ids", "request"]  # fmt: skip
    api = subprocess.Popen(
        api_argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not ready(url):
            if time.monotonic() > deadline or api.poll() is not None:
                raise RuntimeError("the heavy async API did not start")
            time.sleep(0.3)
        yield url, worker.pid
    finally:
        for process in (api, worker):
            process.send_signal(signal.SIGCONT)
            process.terminate()
            process.wait(timeout=30)


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def service_file(folder: Path, light: Path, heavy: Path, follow_up: bool) -> Path:
    versions = [{"name": "light", "model": {"uri": str(light)}}]
    spec: dict[str, object] = {"traffic": {"split": [{"version": "light", "weight": 100}]}}
    if follow_up:
        versions.append({"name": "heavy", "model": {"uri": str(heavy)}})
        spec["followUp"] = {"version": "heavy"}
    path = folder / f"stages-{follow_up}.yaml"
    document = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "iris-stages"},
        "spec": {"versions": versions, **spec},
    }
    path.write_text(yaml.safe_dump(document))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("light_dir", type=Path)
    parser.add_argument("heavy_dir", type=Path)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # vegeta, started from here, runs on core 1 too
    test = LoadTest.model_validate(
        {
            "rate": args.rate,
            "durationSeconds": args.duration,
            "body": {"data": [ROW]},
            "thresholds": {"minSuccessRatio": 1.0},
        }
    )
    measured: dict[str, list[tuple[float, float, float]]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        folder = Path(name)
        port = free_port()
        light_url, _ = stack.enter_context(
            started("light", [MLPATTERNS, "serve", "model", "--model", str(args.light_dir),
                              "--port", str(port), "--no-log-predictions"], {}, port)
        )  # fmt: skip
        heavy_url, worker = stack.enter_context(heavy_stage(args.heavy_dir, folder))
        gateways = {}
        for follow_up in (False, True):
            port = free_port()
            argv = [MLPATTERNS, "serve", "gateway", "-f",
                    str(service_file(folder, args.light_dir, args.heavy_dir, follow_up)),
                    "--port", str(port), f"--upstream=light={light_url}",
                    f"--upstream=heavy={heavy_url}"]  # fmt: skip
            gateway = started(f"gateway, follow-up {follow_up}", argv, {}, port)
            gateways[follow_up] = stack.enter_context(gateway)
        for _ in range(args.rounds):  # alternating, so a drifting machine shifts all alike
            for case in CASES:
                stalled = case == "+ heavy stalled"
                url, _ = gateways[case != "light alone"]
                if stalled:
                    os.kill(worker, signal.SIGSTOP)
                try:
                    result = run(url, test, folder)
                finally:
                    if stalled:
                        os.kill(worker, signal.SIGCONT)
                if result.success_ratio < 1:
                    raise RuntimeError(f"{case}: failed answers {result.status_codes}")
                measured[case].append((result.p50_ms, result.p90_ms, result.p99_ms))
    print(f"{args.rate} requests/s for {args.duration} s, median of {args.rounds} rounds")
    medians = {
        case: tuple(statistics.median(run[i] for run in runs) for i in range(3))
        for case, runs in measured.items()
    }
    alone = medians["light alone"]
    for case, (p50, p90, p99) in medians.items():
        print(
            f"  {case:18} p50 {p50:5.2f} ms  p90 {p90:5.2f} ms  p99 {p99:5.2f} ms   "
            f"vs alone: p50 {p50 / alone[0]:.2f}x, p99 {p99 / alone[2]:.2f}x"
        )


if __name__ == "__main__":
    main()
