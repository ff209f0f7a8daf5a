"""The lifecycle's reaction times, on this machine, with real servers:

1. monitoring: a real Prometheus scraping a real model server, evaluating the
   chart's alert rules with minutes read as seconds (a minute of a cluster's time is
   a second here): stationary traffic drawn from the training data for
   `--steady` seconds (scaled: minutes), counting every evaluation that raised an
   alert, pending or firing (the false-alarm rate); then the seconds (scaled
   minutes) from a shifted feature, a class-mix shift and the traffic stopping to
   their alerts firing, against the rules' own `for` (10), the floor.
2. rollout: `mlpatterns up` with a candidate at 10% whose server stops answering;
   the seconds from the stop to the rollback, against the floor the rollout's own
   settings give ((failureLimit + 1) analysis intervals).

Run:  .venv/bin/python benchmarks/lifecycle.py [--steady 300] [--interval 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlpatterns.serving.drift_window import WINDOW_ROWS  # noqa: E402
from mlpatterns.serving.metrics import DRIFT_SAMPLE  # noqa: E402
from tests.integration.test_model_server import start_server  # noqa: E402
from tests.support.embedded import start_up  # noqa: E402
from tests.support.load import recorded_load  # noqa: E402
from tests.support.monitoring import (  # noqa: E402
    iris_rows,
    query,
    rules_in_seconds,
    seconds_until_firing,
    send,
)
from tests.support.processes import wait_until  # noqa: E402
from tests.support.servers import prometheus_server  # noqa: E402
from tests.support.training import aliased_iris  # noqa: E402

FILL = WINDOW_ROWS * DRIFT_SAMPLE
RULE_COUNT = 9  # alert rules in charts/mlpatterns/files/alert-rules.yaml


def monitoring(home: Path, version: str, folder: Path, steady: int) -> None:
    server = start_server(home, f"models:/iris/{version}", "--service", "iris")
    try:
        target = server.url.removeprefix("http://")
        with prometheus_server(folder / "prometheus", [target], rules_in_seconds(folder)) as url:
            send(server, iris_rows(FILL, seed=1))
            deadline, seed = time.monotonic() + steady, 2
            while time.monotonic() < deadline:  # 100 rows every half second
                send(server, iris_rows(100, seed=seed))
                seed += 1
                time.sleep(0.5)
            raised = query(url, f"count_over_time(ALERTS[{steady}s])")
            evaluations = steady * RULE_COUNT
            count = sum(int(float(r["value"][1])) for r in raised)
            names = sorted({r["metric"]["alertname"] for r in raised})
            print(f"steady traffic: {steady} s (scaled minutes), {RULE_COUNT} rules evaluated "
                  f"every second: {count} of {evaluations} rule evaluations raised an alert "
                  f"({count / evaluations:.2%}) {names or ''}")  # fmt: skip
            shifted = iris_rows(FILL, seed=100)
            shifted[:, 2] += 1.0
            send(server, shifted)
            drift = seconds_until_firing(url, "MlpatternsFeatureDrift")
            send(server, iris_rows(FILL, seed=200, only=0))
            last_request = time.monotonic()
            mix = seconds_until_firing(url, "MlpatternsClassMixShift")
            seconds_until_firing(url, "MlpatternsVolumeDrop")
            drop = time.monotonic() - last_request
            # floors: the rule's `for` (10 scaled minutes); for the drop, also the 5 s
            # the 10 s rate window takes to fall under half the hour before's
            for what, seconds, floor in (("feature drift", drift, 10), ("class mix", mix, 10),
                                         ("volume drop", drop, 15)):  # fmt: skip
                print(f"{what}: fired {seconds:.1f} s after it began; floor {floor} s: "
                      f"{seconds / floor:.2f}x")  # fmt: skip
    finally:
        server.stop()


def rollout(home: Path, folder: Path, interval: float) -> None:
    service = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "bench-rollout"},
        "spec": {
            "versions": [
                {"name": "a", "model": {"uri": "models:/iris@production"}},
                {"name": "b", "model": {"uri": "models:/iris@candidate"},
                 "parameters": {"timeoutSeconds": 0.5}},
            ],
            "rollout": {
                "candidate": "b",
                "steps": [{"weight": 10, "requests": 1_000_000}],
                "analysis": {"intervalSeconds": interval, "failureLimit": 1, "minRequests": 5},
            },
        },
    }  # fmt: skip
    file = folder / "rollout.yaml"
    file.write_text(yaml.safe_dump(service))
    up = start_up(home, file)
    status = home / "run" / "bench-rollout.rollout.json"
    try:
        server = next(p["pid"] for p in up.state()["processes"] if p["name"] == "model-b")  # type: ignore[union-attr, index]
        rows = [list(map(float, r)) for r in iris_rows(1000, seed=5)]
        with recorded_load(up.url, rows, clients=4, limit_seconds=120) as answers:
            time.sleep(2 * interval)  # analyses that pass, before the fault
            os.kill(server, signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                wait_until(
                    "rollback",
                    lambda: json.loads(status.read_text()).get("phase") == "RolledBack",
                    10 * interval + 30,
                )
                seconds = time.monotonic() - stopped
            finally:
                os.kill(server, signal.SIGCONT)
        during = [a for a in answers if stopped <= a.at <= stopped + seconds]
        errors = sum(1 for a in during if a.status != 200)
        floor = 2 * interval
        share = errors / max(1, len(during))
        print(f"bad canary (10%, server stopped) to rollback: {seconds:.1f} s; two analysis "
              f"intervals of {interval:g} s are the floor: {seconds / floor:.2f}x; clients' "
              f"errors meanwhile {errors} of {len(during)} ({share:.1%})")  # fmt: skip
    finally:
        up.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steady", type=int, default=300, help="seconds of steady traffic")
    parser.add_argument("--interval", type=float, default=5.0, help="analysis interval, s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlpatterns-lifecycle-") as scratch:
        folder = Path(scratch)
        home = folder / "home"
        stable = aliased_iris(home)["production"]
        monitoring(home, stable, folder, args.steady)
        rollout(home, folder, args.interval)


if __name__ == "__main__":
    main()
