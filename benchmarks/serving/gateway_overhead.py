"""Gateway overhead, side by side in one run: straight to a model server, then through
the gateway with a plain route (also with its decision log off), a 100% shadow, a
90/10 split, the split with a 100% shadow, and a sticky split behind a header rule
(requests from 1,000 users); nginx doing the same job (one route; a 100% mirror; a
90/10 split by weighted round robin); the
floor for a Python gateway, `byte_forwarder.py` (one route, nothing but the bytes
passed on); and bare forwarders on Go's net/http, on fasthttp and on hyper (Rust, one
thread) (`compiled_peer.py`). Each gateway case runs with the Python data plane and
with the compiled one (`dataplane/`, built by `hack/dataplane` when missing; its
cases are named `compiled gateway: ...`).

    .venv/bin/python benchmarks/serving/gateway_overhead.py MODEL_DIR [--connections 16]
        [--cases "one route,shadow"] [--data-planes python,compiled]

The model servers and the gateway run on core 0 (`taskset`), wrk on core 1, all with
the same Open Inference Protocol request as the serving benchmark. Prints requests/s,
p50/p99, the throughput ratio to direct, the latency the gateway adds, each proxy's
CPU per request (its user and system time from /proc, children included), and the
gateway's throughput and p50 against nginx's for the same job. Two runs
put the shadow on a hung server (SIGSTOP) and on a refusing port: the primary's p99
there, against the one-route run's, is what a broken shadow costs the clients.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compiled_peer import compiled_peer
from nginx_peer import ensure_nginx, nginx_argv, write_nginx_config
from run import free_port, load, wait_until_answering, write_wrk_script

MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
REPO = Path(__file__).resolve().parents[2]
ALONE = {"split": [{"version": "svc", "weight": 100}]}
STICKY = "gateway: sticky 90/10 split + header rule"
SHADOW_ONLY = {**ALONE, "shadow": {"version": "rf", "percent": 100}}
# where rf's requests go: "rf" is a healthy server; "hung" and "refused" are shadow
# faults whose cost to the primary's latency the gateway must keep away from clients
STICKY_ONE_SERVER = "gateway: sticky 90/10 split + header rule, one server"
RF_TARGETS = {
    "gateway: shadow to a hung server": "hung",
    "gateway: shadow to a refusing port": "refused",
    # both versions answered by svc's server: the model servers' work is one route's,
    # so what differs from one route is the gateway's decisions alone
    STICKY_ONE_SERVER: "svc",
}
UNLOGGED = "gateway: one route, decisions not logged"  # what the decision log costs
VARIANTS = {
    "gateway: one route": ALONE,
    UNLOGGED: ALONE,
    "gateway: 100% shadow": SHADOW_ONLY,
    "gateway: shadow to a hung server": SHADOW_ONLY,
    "gateway: shadow to a refusing port": SHADOW_ONLY,
    "gateway: 90/10 split": {
        "split": [{"version": "svc", "weight": 90}, {"version": "rf", "weight": 10}]
    },
    "gateway: split + 100% shadow": {
        "split": [{"version": "svc", "weight": 90}, {"version": "rf", "weight": 10}],
        "shadow": {"version": "rf", "percent": 100},
    },
    # every request is checked against a header rule it does not match, then hashed
    # by its user (1,000 of them, from the script) onto the sticky 90/10 split
    STICKY: {
        "rules": [
            {"match": {"headers": {"x-beta": {"exact": "yes"}}}, "route": [{"version": "rf"}]}
        ],
        "split": [{"version": "svc", "weight": 90}, {"version": "rf", "weight": 10}],
        "sticky": {"header": "x-user-id"},
    },
}
VARIANTS[STICKY_ONE_SERVER] = VARIANTS[STICKY]
NGINX_SPLIT = "nginx: 90/10 split"
# what rf takes: nothing, a copy of every request, or a tenth of them (weighted round robin)
NGINX = {"nginx: one route": "", "nginx: 100% mirror": "mirror", NGINX_SPLIT: "split"}
FLOOR = "python floor: byte forwarder"
FORWARDER = str(Path(__file__).with_name("byte_forwarder.py"))
COMPILED = {
    "Go net/http: bare forwarder": "nethttp",
    "fasthttp: bare forwarder": "fasthttp",
    "hyper: bare forwarder": "hyper",
}
NETHTTP, FASTHTTP, HYPER = COMPILED
COMPILED_GATEWAY = "compiled "  # the prefix of a case run with `--data-plane compiled`
PAIRS = [  # (who, job, ours, theirs)
    ("gateway", "one route", "gateway: one route", "nginx: one route"),
    ("gateway", "100% shadow", "gateway: 100% shadow", "nginx: 100% mirror"),
    ("compiled gateway", "one route", "compiled gateway: one route", "nginx: one route"),
    ("compiled gateway", "100% shadow", "compiled gateway: 100% shadow", "nginx: 100% mirror"),
    ("gateway", "90/10 split", "gateway: 90/10 split", NGINX_SPLIT),
    ("compiled gateway", "90/10 split", "compiled gateway: 90/10 split", NGINX_SPLIT),
    ("byte forwarder", "one route, the Python floor", FLOOR, "nginx: one route"),
    ("Go net/http", "one route, bare", NETHTTP, "nginx: one route"),
    ("fasthttp", "one route, bare", FASTHTTP, "nginx: one route"),
    ("hyper", "one route, bare", HYPER, "nginx: one route"),
]


def write_users_script(folder: Path) -> Path:
    """The benchmark's request, from 1,000 users in turn (an `x-user-id` header)."""
    script = folder / "users.lua"
    plain = write_wrk_script(folder).read_text()
    script.write_text(
        plain + "counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        '  wrk.headers["x-user-id"] = "user-" .. (counter % 1000)\n'
        "  return wrk.format()\n"
        "end\n"
    )
    return script


def start(argv: list[str], url: str, probe: str = "") -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_until_answering(url, process, " ".join(argv[0:3]), timeout=60)
    return process


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) of process `pid` and its children, from /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # from the state on
        except OSError:
            continue  # gone meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # itself, or its child
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def measured(
    argv: list[str], port: int, connections: int, duration: int, script: Path
) -> tuple[tuple[float, float, float], float]:
    """Start a proxy listening on `port`, warm it up, load it, and stop it: requests/s,
    p50 and p99, and the proxy's CPU per request in microseconds."""
    url = f"http://127.0.0.1:{port}"
    proxy = start(argv, url)
    try:
        load(url, connections, 2, script)
        before = process_cpu(proxy.pid)  # taskset execs the proxy: one pid
        result = load(url, connections, duration, script)
        return result, (process_cpu(proxy.pid) - before) / (result[0] * duration) * 1e6
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--cases", default="", help="comma-separated parts of the case names to run (all)"
    )
    parser.add_argument(
        "--data-planes",
        default="python,compiled",
        help="the gateway's data planes to run each gateway case with (python, compiled)",
    )
    args = parser.parse_args()
    planes = [plane for plane in args.data_planes.split(",") if plane]
    if "compiled" in planes:  # built from dataplane/ when missing, as the tests build it
        built = subprocess.run(
            ["bash", str(REPO / "hack" / "dataplane"), "path"],
            check=True,
            capture_output=True,
            text=True,
        )
        os.environ["MLPATTERNS_DATAPLANE"] = built.stdout.strip().splitlines()[-1]
    variants = {
        (COMPILED_GATEWAY if plane == "compiled" else "") + name: (plane, traffic)
        for plane in planes
        for name, traffic in VARIANTS.items()
    }
    parts = [part for part in args.cases.split(",") if part]

    def wanted(name: str) -> bool:
        return not parts or any(part in name for part in parts)

    processes: list[subprocess.Popen[bytes]] = []
    results: dict[str, tuple[float, float, float]] = {}
    cpu: dict[str, float] = {}  # the proxy's CPU per request, us
    with tempfile.TemporaryDirectory() as folder:
        script = write_wrk_script(Path(folder))
        users_script = write_users_script(Path(folder))
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
            targets = {
                "hung": hung_url,
                "refused": f"http://127.0.0.1:{free_port()}",
                "svc": upstreams["svc"],
            }
            load(upstreams["svc"], args.connections, 2, script)  # warm-up
            results["direct"] = load(upstreams["svc"], args.connections, args.duration, script)
            for name, (plane, traffic) in variants.items():
                if not wanted(name):
                    continue
                plain = name.removeprefix(COMPILED_GATEWAY)
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
                results[name], cpu[name] = measured(
                    [
                        MLPATTERNS,
                        "serve",
                        "gateway",
                        "-f",
                        str(spec),
                        "--port",
                        str(port),
                        *[
                            f"--upstream={v}={targets.get(RF_TARGETS.get(plain, ''), u)}"
                            if v == "rf"
                            else f"--upstream={v}={u}"
                            for v, u in upstreams.items()
                        ],
                        *(["--no-log-decisions"] if plain == UNLOGGED else []),
                        f"--data-plane={plane}",
                    ],
                    port,
                    args.connections,
                    args.duration,
                    users_script if plain in (STICKY, STICKY_ONE_SERVER) else script,
                )
            nginx = ensure_nginx() if any(wanted(name) for name in NGINX) else ""
            for name, rf_takes in NGINX.items():
                if not wanted(name):
                    continue
                port = free_port()
                rf = upstreams["rf"].removeprefix("http://")
                config = write_nginx_config(
                    Path(folder) / f"nginx-{port}",
                    port,
                    upstreams["svc"].removeprefix("http://"),
                    mirror=rf if rf_takes == "mirror" else None,
                    tenth=rf if rf_takes == "split" else None,
                )
                results[name], cpu[name] = measured(
                    nginx_argv(nginx, config), port, args.connections, args.duration, script
                )
            forwarders = {FLOOR: [sys.executable, FORWARDER]} if wanted(FLOOR) else {}
            forwarders.update({n: [compiled_peer(p)] for n, p in COMPILED.items() if wanted(n)})
            for name, argv in forwarders.items():
                port = free_port()
                upstream = upstreams["svc"].removeprefix("http://")
                results[name], cpu[name] = measured(
                    [*argv, f"127.0.0.1:{port}", upstream],
                    port,
                    args.connections,
                    args.duration,
                    script,
                )
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
                f"{p50 - direct_p50:+.2f} ms p50, {p99 - direct_p99:+.2f} ms p99"
            )
        )
        used = f", CPU {cpu[name]:.1f} us/req" if name in cpu else ""
        print(f"  {name:34} {rps:9,.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms{extra}{used}")
    for prefix in ("", COMPILED_GATEWAY):
        alone = prefix + "gateway: one route"
        for case in (STICKY, STICKY_ONE_SERVER):
            sticky = prefix + case
            if sticky in results and alone in results:
                (rps, p50, _), (alone_rps, alone_p50, _) = results[sticky], results[alone]
                print(
                    f"  {sticky} / one route: {rps / alone_rps:.2f}x throughput, "
                    f"p50 {p50 - alone_p50:+.2f} ms, CPU {cpu[sticky] / cpu[alone]:.2f}x"
                )
    for who, job, ours, theirs in PAIRS:
        if ours in results and theirs in results:
            (rps, p50, _), (peer_rps, peer_p50, _) = results[ours], results[theirs]
            print(
                f"  {who} / nginx, {job}: {rps / peer_rps:.2f}x throughput, "
                f"p50 {p50 - peer_p50:+.2f} ms"
            )


if __name__ == "__main__":
    main()
