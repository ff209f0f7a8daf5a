"""Serving benchmark: mlpatterns' model server against KServe, MLServer and a bare
endpoint on our HTTP stack, loaded one at a time, with the same ONNX model and load.

    .venv/bin/python benchmarks/serving/run.py MODEL_DIR [--duration 10] [--rounds 3]
        [--connections 1,16,64]
        [--servers mlpatterns,binary,grpc,grpclive,bare,kserve,mlserver,nodrift,accesslog]

`binary` is our server asked the same with the input as raw bytes after the JSON
header (the binary tensor data extension, as Triton's and KServe's clients send by
default), `grpc` the same over gRPC (loaded by ghz, built by `hack/tools build ghz`;
`--connections` is then ghz's concurrency over as many connections; `grpclive` loads
the cheapest call, `ServerLive`, the floor of the gRPC server itself), `nodrift` our
server without its drift metrics (`--no-drift`): the cost of prediction monitoring on
the request path, and `accesslog` with `--access-log`: the cost of a log line per
request. MODEL_DIR is a fetched model (`mlpatterns fetch-model models:/iris@candidate
DIR`). Each server runs pinned to core 0 (`taskset`), wrk (Debian's package) or ghz
to core 1, and every server answers the same Open Inference Protocol v2 request for
one iris row. KServe and MLServer are
installed from PyPI into their own virtual environments under
~/.cache/mlpatterns/peers/ on first use (`tests.support.peers`). Prediction logging is
off on our server (the peers do not log).

All servers are started first and wait idle; each round then loads every server in
turn at every level, so that a machine whose speed drifts over minutes (shared
machines do, by up to a third) shifts every server's numbers alike. Prints each
measurement, the median of the rounds, and the ratios of the medians. Each line also
gives the server's CPU time per request (user and system, all its threads, read from
/proc before and after the load): a second view, less sensitive to the load
generator and to how busy the pinned core was kept.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tests.support.peers import peer_python  # noqa: E402

BODY = {
    "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]
}
PATH = "/v2/models/iris/infer"


@dataclass
class Result:
    server: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # the server's CPU time per request (all its threads), from /proc


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GRPC_PORTS: dict[str, int] = {}  # a server's gRPC port, by its name here


def commands(
    model_dir: Path, folder: Path, ours_extra: list[str]
) -> dict[str, Callable[[int], tuple[list[str], dict[str, str]]]]:
    mlpatterns = str(Path(sys.executable).with_name("mlpatterns"))

    def ours(port: int) -> tuple[list[str], dict[str, str]]:
        return [
            mlpatterns,
            "serve",
            "model",
            "--model",
            str(model_dir),
            "--port",
            str(port),
            "--no-log-predictions",
            *ours_extra,
        ], {}

    def bare(port: int) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, str(HERE / "bare.py"), str(port)], {}

    def kserve(port: int) -> tuple[list[str], dict[str, str]]:
        python = peer_python("kserve")
        return [
            str(python),
            str(HERE / "kserve_iris.py"),
            str(model_dir / "model.onnx"),
            str(port),
        ], {}

    def mlserver(port: int) -> tuple[list[str], dict[str, str]]:
        python = peer_python("mlserver")
        repository = folder / "mlserver"
        (repository / "iris").mkdir(parents=True, exist_ok=True)
        settings = {
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": 0,
            "host": "127.0.0.1",
        }
        (repository / "settings.json").write_text(json.dumps(settings))
        (repository / "iris" / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "iris",
                    "implementation": "mlserver_iris.OnnxIris",
                    "parameters": {"uri": str(model_dir / "model.onnx")},
                }
            )
        )
        return [str(python.with_name("mlserver")), "start", str(repository)], {
            "PYTHONPATH": str(HERE)
        }

    def ours_with(*options: str) -> Callable[[int], tuple[list[str], dict[str, str]]]:
        def start(port: int) -> tuple[list[str], dict[str, str]]:
            argv, env = ours(port)
            return [*argv, *options], env

        return start

    GRPC_PORTS.update(grpc=free_port(), grpclive=free_port())
    return {
        "mlpatterns": ours,
        "binary": ours,
        "grpc": ours_with("--grpc-port", str(GRPC_PORTS["grpc"])),
        "grpclive": ours_with("--grpc-port", str(GRPC_PORTS["grpclive"])),
        "nodrift": ours_with("--no-drift"),
        "accesslog": ours_with("--access-log"),
        "bare": bare,
        "kserve": kserve,
        "mlserver": mlserver,
    }


def answers(url: str) -> bool:
    request = urllib.request.Request(  # noqa: S310 - an http:// URL on loopback
        url + PATH, data=json.dumps(BODY).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency(text: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if not match:
        raise RuntimeError(f"no {percentile}% latency in wrk's output:\n{text}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def write_wrk_script(folder: Path) -> Path:
    """wrk's Lua script: POST the benchmark's request body as JSON."""
    script = folder / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{json.dumps(BODY)}'\n"
    )
    return script


def binary_body() -> tuple[bytes, int]:
    """The same request with its row as raw FP32 bytes after the JSON header."""
    [tensor] = BODY["inputs"]
    values = tensor["data"]
    raw = struct.pack(f"<{len(values)}f", *values)
    head = {k: v for k, v in tensor.items() if k != "data"}
    head["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps({"inputs": [head]}).encode()
    return header + raw, len(header)


def write_binary_script(folder: Path) -> Path:
    """wrk's Lua script: POST the binary form (bytes as Lua decimal escapes)."""
    body, json_size = binary_body()
    escaped = "".join(f"\\{b:03d}" for b in body)
    script = folder / "binary.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/octet-stream"\n'
        f'wrk.headers["Inference-Header-Content-Length"] = "{json_size}"\n'
        f'wrk.body = "{escaped}"\n'
    )
    return script


def write_protoset(folder: Path) -> Path:
    """The Open Inference Protocol's service as a FileDescriptorSet, for ghz: taken from
    the messages tritonclient ships generated (their .proto is not in the package)."""
    from google.protobuf import descriptor_pb2
    from tritonclient.grpc import model_config_pb2, service_pb2

    files = descriptor_pb2.FileDescriptorSet()
    for module in (model_config_pb2, service_pb2):  # a file after those it imports
        module.DESCRIPTOR.CopyToProto(files.file.add())
    protoset = folder / "inference.protoset"
    protoset.write_bytes(files.SerializeToString())
    return protoset


def grpc_request() -> dict[str, object]:
    """The benchmark's request as ModelInfer's message in protobuf JSON (raw bytes)."""
    [tensor] = BODY["inputs"]
    raw = struct.pack(f"<{len(tensor['data'])}f", *tensor["data"])
    return {
        "model_name": "iris",
        "inputs": [{k: v for k, v in tensor.items() if k != "data"}],
        "raw_input_contents": [base64.b64encode(raw).decode()],
    }


def ghz_load(
    address: str, connections: int, duration: int, protoset: Path, method: str = "ModelInfer"
) -> tuple[float, float, float]:
    """requests/s, p50 and p99 in ms of ghz's load of `method` (ServerLive: the cheapest
    call, the gRPC server's own floor); any error fails the run."""
    request = grpc_request() if method == "ModelInfer" else {}
    tools = subprocess.run(
        ["bash", str(REPO / "hack/tools"), "path"], capture_output=True, text=True, check=True
    )
    ghz = Path(tools.stdout.strip()) / "ghz"
    out = subprocess.run(
        ["taskset", "-c", "1", str(ghz), "--insecure", "--protoset", str(protoset),
         "--call", f"inference.GRPCInferenceService/{method}", "-d", json.dumps(request),
         "-c", str(connections), "--connections", str(connections), "-z", f"{duration}s",
         "--duration-stop", "wait",
         "--format", "json", address],
        capture_output=True, text=True, check=True, timeout=duration + 60,
    ).stdout  # fmt: skip
    report = json.loads(out)
    if report.get("errorDistribution"):
        raise RuntimeError(f"errors under gRPC load: {report['errorDistribution']}")
    by = {d["percentage"]: d["latency"] / 1e6 for d in report["latencyDistribution"]}
    return float(report["rps"]), by[50], by[99]


def load(
    url: str,
    connections: int,
    duration: int,
    script: Path,
    allow_timeouts: bool = False,
    path: str = PATH,
) -> tuple[float, float, float]:
    """requests/s, p50 and p99 in ms. Any error fails the run, except that a peer may time
    out (wrk gives up on a request after 2 s): that is counted and printed, not hidden."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url + path,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if "Non-2xx" in out or (errors and (not allow_timeouts or any(map(int, errors.groups()[:3])))):
        raise RuntimeError(f"errors under load:\n{out}")
    if errors:
        print(f"  (wrk, {connections} connections: {errors.group(4)} requests timed out after 2 s)")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rps, _latency(out, "50"), _latency(out, "99")


def wait_until_answering(
    url: str, process: subprocess.Popen[bytes], name: str, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while not answers(url):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.3)


@contextmanager
def started(
    name: str, argv: list[str], extra_env: dict[str, str], port: int
) -> Iterator[tuple[str, int]]:
    """One server pinned to core 0, answering; its URL and process id (taskset execs
    the server, so the id is the server's). Stopped on leaving."""
    process = subprocess.Popen(
        ["taskset", "-c", "0", *argv],
        env={**os.environ, **extra_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, process, name)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server and level")
    parser.add_argument("--servers", default="mlpatterns,bare,kserve,mlserver")
    parser.add_argument("--ours-args", default="", help='extra options, e.g. "--no-batching"')
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        sys.exit("needs wrk and taskset: apt-get install wrk util-linux")
    levels = [int(c) for c in args.connections.split(",")]
    names = args.servers.split(",")
    samples: dict[tuple[str, int], list[Result]] = {}
    if set(names) & {"grpc", "grpclive"}:
        subprocess.run(["bash", str(REPO / "hack/tools"), "build", "ghz"], check=True)
    with tempfile.TemporaryDirectory() as folder, ExitStack() as servers:
        scripts = {
            "json": write_wrk_script(Path(folder)),
            "binary": write_binary_script(Path(folder)),
        }
        protoset = write_protoset(Path(folder))
        starters = commands(args.model_dir.resolve(), Path(folder), args.ours_args.split())
        urls: dict[str, tuple[str, int]] = {}

        def load_of(name: str, connections: int, duration: int) -> tuple[float, float, float]:
            if name in GRPC_PORTS:
                method = "ServerLive" if name == "grpclive" else "ModelInfer"
                address = f"127.0.0.1:{GRPC_PORTS[name]}"
                return ghz_load(address, connections, duration, protoset, method)
            script = scripts["binary" if name == "binary" else "json"]
            # a peer that falls behind shows in its numbers; ours must not time out
            return load(
                urls[name][0], connections, duration, script, name in ("kserve", "mlserver")
            )

        for name in names:  # all up at once, idle unless loaded: rounds can interleave
            port = free_port()
            urls[name] = servers.enter_context(started(name, *starters[name](port), port))
            load_of(name, 16, 2)  # warm-up
        for round_ in range(1, args.rounds + 1):
            for connections in levels:
                for name in names:
                    pid = urls[name][1]
                    cpu = cpu_seconds(pid)
                    rps, p50, p99 = load_of(name, connections, args.duration)
                    cpu_us = (cpu_seconds(pid) - cpu) / (rps * args.duration) * 1e6
                    result = Result(name, connections, rps, p50, p99, cpu_us)
                    samples.setdefault((name, connections), []).append(result)
                    print(f"round {round_}  {line(result)}", flush=True)
    results = [median_result(runs) for runs in samples.values()]
    print("\nmedian of the rounds:")
    for r in results:
        print(line(r))
    report(results, levels)
    report_paired(samples, levels)


# what mlpatterns (JSON over HTTP) is compared with
PEERS = ("binary", "grpc", "grpclive", "bare", "kserve", "mlserver", "nodrift", "accesslog")


def line(r: Result) -> str:
    return (
        f"{r.server:10} c={r.connections:<3} {r.requests_per_second:10,.0f} req/s  "
        f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  cpu {r.cpu_us:6.1f} us/request"
    )


def median_result(runs: list[Result]) -> Result:
    """The run of median throughput (its own latencies with it, not mixed across runs),
    with the median CPU time per request of all the runs."""
    ordered = sorted(runs, key=lambda r: r.requests_per_second)
    cpu = sorted(r.cpu_us for r in runs)[len(runs) // 2]
    return replace(ordered[len(ordered) // 2], cpu_us=cpu)


def report(results: list[Result], levels: list[int]) -> None:
    by = {(r.server, r.connections): r for r in results}
    print(
        "\nratios (mlpatterns / other): throughput, p99 latency, and CPU time per request"
        " (the other's over ours: the throughput one core would give at full load)"
    )
    for connections in levels:
        ours = by.get(("mlpatterns", connections))
        if ours is None:
            continue
        parts = []
        for other in PEERS:
            theirs = by.get((other, connections))
            if theirs:
                parts.append(
                    f"{other} {ours.requests_per_second / theirs.requests_per_second:5.2f}x "
                    f"(p99 {ours.p99_ms:.2f} vs {theirs.p99_ms:.2f} ms, "
                    f"by CPU {theirs.cpu_us / ours.cpu_us:4.2f}x)"
                )
        print(f"  c={connections:<3} " + "   ".join(parts))


def report_paired(samples: dict[tuple[str, int], list[Result]], levels: list[int]) -> None:
    """The same ratios taken within each round, where the two measurements are seconds
    apart, then their median and range: the machine's drift between rounds cancels."""
    print("\nratios within each round (median, and range over the rounds):")
    for connections in levels:
        ours = samples.get(("mlpatterns", connections), [])
        parts = []
        for other in PEERS:
            theirs = samples.get((other, connections), [])
            if not ours or len(theirs) != len(ours):
                continue
            pairs = list(zip(ours, theirs, strict=True))
            speed = sorted(a.requests_per_second / b.requests_per_second for a, b in pairs)
            cpu = sorted(b.cpu_us / a.cpu_us for a, b in pairs)
            parts.append(
                f"{other} {speed[len(speed) // 2]:5.2f}x ({speed[0]:.2f} to {speed[-1]:.2f}), "
                f"by CPU {cpu[len(cpu) // 2]:4.2f}x ({cpu[0]:.2f} to {cpu[-1]:.2f})"
            )
        if parts:
            print(f"  c={connections:<3} " + "   ".join(parts))


if __name__ == "__main__":
    main()
