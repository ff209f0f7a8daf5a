"""Inference graphs against calling the models directly: a two-step sequence (iris'
logistic regression, then a model of its probabilities) and a three-model ensemble
(logistic regression, random forest, SVC; mean), each executed by the gateway,
beside each model server asked directly and the gateway's plain one-route path.

    .venv/bin/python benchmarks/serving/inference_graphs.py [--duration 8]
        [--connections 1,16]

It trains the four models into a temporary registry first (about a minute). The
servers run on core 0, wrk on core 1, `POST /predict` with one row, prediction
logging off. Prints requests/s and p50 per case and connection count, then the
ratios: the sequence's p50 against its two models' direct p50s added (what a client
calling them in turn waits at least), the ensemble's against the slowest of its
three (what a client calling them at once waits at least), and both graphs'
throughput against the one-route gateway's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port, load

from tests.support.training import aliased_iris, stacked_iris

MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
MODELS = {
    "logistic": "models:/iris@production",
    "forest": "models:/iris@candidate",
    "svc": "models:/iris@svc",
    "stacked": "models:/iris-stacked@production",
}
GRAPHS = {
    "one route": {"traffic": {"split": [{"version": "logistic", "weight": 100}]}},
    "sequence": {"graph": {"sequence": [{"version": "logistic"},
                                         {"version": "stacked", "input": "previous"}]}},
    "ensemble": {"graph": {"ensemble": {"versions": ["logistic", "forest", "svc"]}}},
}  # fmt: skip


def write_script(folder: Path, row: list[float]) -> Path:
    """wrk's script: POST /predict with one row."""
    script = folder / f"predict-{len(row)}.lua"
    body = json.dumps({"data": [row]})
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{body}'\n"
    )
    return script


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def running(name: str, argv: list[str], port: int, health: str) -> Iterator[str]:
    """A server on core 0, once `health` answers 200; its URL. Stopped on leaving."""
    process = subprocess.Popen(
        ["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not healthy(url + health):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def gateway(folder: Path, name: str, upstreams: dict[str, str]) -> ContextManager[str]:
    spec = {"versions": [{"name": v, "model": {"uri": MODELS[v]}} for v in MODELS], **GRAPHS[name]}
    file = folder / f"{name.replace(' ', '-')}.yaml"
    document = {"apiVersion": "mlpatterns.io/v1alpha1", "kind": "ModelService",
                "metadata": {"name": "iris"}, "spec": spec}  # fmt: skip
    file.write_text(yaml.safe_dump(document))
    port = free_port()
    targets = [f"--upstream={v}={u}" for v, u in upstreams.items()]
    argv = [MLPATTERNS, "serve", "gateway", "-f", str(file), "--port", str(port), *targets]
    return running(f"the {name} gateway", argv, port, "/-/health")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", default="1,16")
    args = parser.parse_args()
    levels = [int(n) for n in args.connections.split(",")]
    results: dict[tuple[str, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        folder = Path(name)
        home = folder / "home"
        aliased_iris(home, svc={"dataset": "iris", "name": "iris", "model_type": "svc"})
        stacked_iris(home)
        os.environ["MLPATTERNS_HOME"] = str(home)  # the servers' registry
        measurements = write_script(folder, [5.1, 3.5, 1.4, 0.2])
        probabilities = write_script(folder, [0.97, 0.02, 0.01])  # the stacked model's rows
        upstreams = {}
        for version, reference in MODELS.items():
            port = free_port()
            argv = [MLPATTERNS, "serve", "model", "--model", reference, "--port", str(port),
                    "--no-log-predictions"]  # fmt: skip
            server = running(version, argv, port, "/v2/health/ready")
            upstreams[version] = stack.enter_context(server)
        targets = {f"direct {v}": u for v, u in upstreams.items()}
        for case in GRAPHS:
            targets[f"gateway {case}"] = stack.enter_context(gateway(folder, case, upstreams))
        for connections in levels:
            for case, url in targets.items():
                script = probabilities if case == "direct stacked" else measurements
                load(url, connections, 2, script, path="/predict")  # warm up
                rps, p50, _ = load(url, connections, args.duration, script, path="/predict")
                results[(case, connections)] = (rps, p50)
    for connections in levels:
        print(f"{connections} connection(s), {args.duration} s")
        for (case, level), (rps, p50) in results.items():
            if level == connections:
                print(f"  {case:22} {rps:9,.0f} req/s  p50 {p50:6.2f} ms")
        p50 = {case: results[(case, connections)][1] for case in targets}
        rps = {case: results[(case, connections)][0] for case in targets}
        chained = p50["direct logistic"] + p50["direct stacked"]
        slowest = max(p50[f"direct {v}"] for v in ("logistic", "forest", "svc"))
        print(
            f"  sequence p50 / its two models' direct p50s added: "
            f"{p50['gateway sequence'] / chained:.2f}x ({p50['gateway sequence']:.2f} vs "
            f"{chained:.2f} ms)"
        )
        print(
            f"  ensemble p50 / the slowest of its three direct: "
            f"{p50['gateway ensemble'] / slowest:.2f}x ({p50['gateway ensemble']:.2f} vs "
            f"{slowest:.2f} ms)"
        )
        one = rps["gateway one route"]
        print(
            f"  throughput against the one-route gateway: sequence "
            f"{rps['gateway sequence'] / one:.2f}x, ensemble {rps['gateway ensemble'] / one:.2f}x"
        )


if __name__ == "__main__":
    main()
