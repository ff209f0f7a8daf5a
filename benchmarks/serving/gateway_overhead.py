"""Gateway overhead, side by side in one run: straight to a model server, then through
the gateway with a plain route, a 90/10 split, and the split with a 100% shadow.

    .venv/bin/python benchmarks/serving/gateway_overhead.py MODEL_DIR [--connections 16]

The model servers and the gateway run on core 0 (`taskset`), wrk on core 1, all with
the same Open Inference Protocol request as the serving benchmark. Prints requests/s,
p50/p99, the throughput ratio to direct, and the latency the gateway adds. Two runs
put the shadow on a hung server (SIGSTOP) and on a refusing port: the primary's p99
there, against the one-route run's, is what a broken shadow costs the clients.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port, load, wait_until_answering, write_wrk_script

MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
ALONE = {"split": [{"version": "svc", "weight": 100}]}
SHADOW_ONLY = {**ALONE, "shadow": {"version": "rf", "percent": 100}}
# where the shadow copies go: "rf" is a healthy server; the others are shadow faults
# whose cost to the primary's latency the gateway must keep away from clients
SHADOW_TARGETS = {
    "gateway: shadow to a hung server": "hung",
    "gateway: shadow to a refusing port": "refused",
}
VARIANTS = {
    "gateway: one route": ALONE,
    "gateway: shadow to a hung server": SHADOW_ONLY,
    "gateway: shadow to a refusing port": SHADOW_ONLY,
    "gateway: 90/10 split": {
        "split": [{"version": "svc", "weight": 90}, {"version": "rf", "weight": 10}]
    },
    "gateway: split + 100% shadow": {
        "split": [{"version": "svc", "weight": 90}, {"version": "rf", "weight": 10}],
        "shadow": {"version": "rf", "percent": 100},
    },
}


def start(argv: list[str], url: str, probe: str = "") -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_until_answering(url, process, " ".join(argv[0:3]), timeout=60)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    processes: list[subprocess.Popen[bytes]] = []
    results: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        script = write_wrk_script(Path(folder))
        upstreams = {}
        try:
            for version in ("svc", "rf"):
                port = free_port()
                upstreams[version] = f"http://127.0.0.1:{port}"
                processes.append(
                    start(
                        [
                            MLPATTERNS,
                            "serve",
                            "model",
                            "--model",
                            str(args.model_dir),
                            "--port",
                            str(port),
                            "--no-log-predictions",
                        ],
                        upstreams[version],
                    )
                )
            port = free_port()
            hung_url = f"http://127.0.0.1:{port}"
            hung = start(
                [
                    MLPATTERNS,
                    "serve",
                    "model",
                    "--model",
                    str(args.model_dir),
                    "--port",
                    str(port),
                    "--no-log-predictions",
                ],
                hung_url,
            )
            processes.append(hung)
            hung.send_signal(signal.SIGSTOP)  # accepts connections, never answers
            targets = {"hung": hung_url, "refused": f"http://127.0.0.1:{free_port()}"}
            load(upstreams["svc"], args.connections, 2, script)  # warm-up
            results["direct"] = load(upstreams["svc"], args.connections, args.duration, script)
            for name, traffic in VARIANTS.items():
                spec = Path(folder) / "iris.yaml"
                spec.write_text(
                    yaml.safe_dump(
                        {
                            "apiVersion": "mlpatterns.io/v1alpha1",
                            "kind": "ModelService",
                            "metadata": {"name": "iris"},
                            "spec": {
                                "versions": [
                                    {"name": v, "model": {"uri": str(args.model_dir)}}
                                    for v in upstreams
                                ],
                                "traffic": traffic,
                            },
                        }
                    )
                )
                port = free_port()
                gateway = start(
                    [
                        MLPATTERNS,
                        "serve",
                        "gateway",
                        "-f",
                        str(spec),
                        "--port",
                        str(port),
                        *[
                            f"--upstream={v}={targets.get(SHADOW_TARGETS.get(name, ''), u)}"
                            if v == "rf"
                            else f"--upstream={v}={u}"
                            for v, u in upstreams.items()
                        ],
                    ],
                    f"http://127.0.0.1:{port}",
                )
                try:
                    load(f"http://127.0.0.1:{port}", args.connections, 2, script)
                    results[name] = load(
                        f"http://127.0.0.1:{port}", args.connections, args.duration, script
                    )
                finally:
                    gateway.terminate()
                    gateway.wait(timeout=30)
        finally:
            for process in processes:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                process.wait(timeout=30)
    direct_rps, direct_p50, direct_p99 = results["direct"]
    print(f"{args.connections} connections, {args.duration} s each")
    for name, (rps, p50, p99) in results.items():
        extra = (
            ""
            if name == "direct"
            else (
                f"  {rps / direct_rps:5.0%} of direct, "
                f"+{p50 - direct_p50:.2f} ms p50, +{p99 - direct_p99:.2f} ms p99"
            )
        )
        print(f"  {name:30} {rps:9,.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms{extra}")


if __name__ == "__main__":
    main()
