"""The README's walkthrough on a real node, timed (a test cluster of its own, root):

1. `helm install --wait` of the platform chart (operator, MinIO and Redis Ready);
2. `kubectl apply -k manifests/patterns/online-ab` to the first 200 through its Service;
3. `kubectl patch` of the split (90/10 and 10/90 in turn) to the clients seeing it:
   the time until 15 of the last 20 answers come from the new majority, p50 and p99;
4. requests/s through the gateway's Service against one model pod's IP directly
   (wrk, OIP v2 infer of one iris row), in alternating rounds, and their ratio.

Run:  .venv/bin/python benchmarks/real_node.py [--patches 20] [--duration 5] [--rounds 3]
(builds missing images and tools first; everything it starts is stopped at the end)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.serving.run import load, write_wrk_script  # noqa: E402

from tests.node.conftest import PLATFORM_IMAGES  # noqa: E402
from tests.support.images import build, import_into_containerd  # noqa: E402
from tests.support.testcluster import RealCluster  # noqa: E402
from tests.support.walkthrough import (  # noqa: E402
    NAMESPACE,
    RELEASE,
    ROW,
    Walkthrough,
    install_platform,
    register_models,
)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def seconds_to_platform_ready(walk: Walkthrough, images: dict[str, object]) -> float:
    """`helm install --wait`: until the operator, MinIO and Redis are all Ready."""
    started = time.monotonic()
    install_platform(walk, images)  # type: ignore[arg-type]
    pod = walk.get("pods", "-l", "app.kubernetes.io/component=operator")["items"][0]
    became = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    print(
        f"  the operator pod: created {pod['metadata']['creationTimestamp']}, "
        f"Ready {became['lastTransitionTime']} (the API's times are to the second)"
    )
    return time.monotonic() - started


def seconds_to_first_answer(walk: Walkthrough) -> float:
    started = time.monotonic()
    walk.run("kubectl", "apply", "-n", NAMESPACE, "-k", "manifests/patterns/online-ab")
    while True:
        try:
            ip = walk.cluster_ip("iris-ab")
            answer = httpx.post(f"http://{ip}:8080/predict", json=ROW, timeout=1)
            if answer.status_code == 200:
                return time.monotonic() - started
        except (httpx.HTTPError, AssertionError):
            pass
        if time.monotonic() - started > 300:
            raise RuntimeError("no 200 from iris-ab within 300 s")
        time.sleep(0.1)


def shift_seconds(walk: Walkthrough, ip: str, majority: str, weights: tuple[int, int]) -> float:
    patch = {
        "spec": {
            "traffic": {
                "split": [
                    {"version": "current", "weight": weights[0]},
                    {"version": "candidate", "weight": weights[1]},
                ]
            }
        }
    }
    window: deque[str] = deque(maxlen=20)
    started = time.monotonic()
    walk.kubectl("patch", "modelservice", "iris-ab", "--type=merge", "-p", json.dumps(patch))
    with httpx.Client(base_url=f"http://{ip}:8080", timeout=5) as client:
        while time.monotonic() - started < 120:
            answer = client.post("/predict", json=ROW, headers={"x-user-id": uuid.uuid4().hex})
            window.append(answer.headers.get("x-mlpatterns-version", ""))
            if len(window) == 20 and window.count(majority) >= 15:
                return time.monotonic() - started
    raise RuntimeError("the split did not move within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patches", type=int, default=20)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlp-bench-") as folder:
        cluster = RealCluster(folder=Path(folder) / "cluster", die_with_parent=True)
        started = time.monotonic()
        cluster.start()
        print(f"test cluster with a real node up in {time.monotonic() - started:.1f} s")
        try:
            images = {image.role: image for image in build(PLATFORM_IMAGES)}
            import_into_containerd(cluster.node.containerd_socket, images.values())
            walk = Walkthrough(cluster, cluster.plane.tool_environment())
            took = seconds_to_platform_ready(walk, images)
            print(f"helm install --wait (operator, MinIO, Redis Ready): {took:.1f} s")
            register_models(walk, Path(folder) / "home")
            print(f"kubectl apply -k to the first 200: {seconds_to_first_answer(walk):.1f} s")
            walk.wait_ready("iris-ab")
            ip = walk.cluster_ip("iris-ab")
            turns = [("candidate", (10, 90)), ("current", (90, 10))]
            shifts = [shift_seconds(walk, ip, *turns[n % 2]) for n in range(args.patches)]
            print(
                f"kubectl patch to the clients seeing the split ({args.patches} patches): "
                f"p50 {quantile(shifts, 0.5):.2f} s, p99 {quantile(shifts, 0.99):.2f} s, "
                f"max {max(shifts):.2f} s"
            )
            pods = walk.get("pods", "-l", "mlpatterns.io/service=iris-ab,version=current")["items"]
            direct = f"http://{pods[0]['status']['podIP']}:8080"
            script = write_wrk_script(Path(folder))
            through: list[float] = []
            straight: list[float] = []
            service = f"http://{ip}:8080"
            for _ in range(args.rounds):
                through.append(load(service, args.connections, args.duration, script)[0])
                straight.append(load(direct, args.connections, args.duration, script)[0])
            ratio = statistics.median(t / s for t, s in zip(through, straight, strict=True))
            print(
                f"requests/s at {args.connections} connections, median of {args.rounds} rounds: "
                f"through the gateway Service {statistics.median(through):,.0f}, one model pod "
                f"directly {statistics.median(straight):,.0f}; ratio within rounds {ratio:.2f}"
            )
            walk.kubectl("delete", "modelservices", "--all", "--wait=true")
            walk.run("helm", "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
