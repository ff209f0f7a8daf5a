"""Reconcile latency of the operator on the test control plane (hack/test-cluster's):

1. from `kubectl patch` of a ModelService's split to the VirtualService carrying the
   new weights, p50 and p99 over 50 patches;
2. the time for 100 ModelServices, created at once, to all report Ready (kwok runs
   their pods, so this is the operator's and the control plane's time, not images').

Run:  .venv/bin/python benchmarks/reconcile.py   (builds nothing; needs hack/tools build)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.controlplane import ControlPlane  # noqa: E402
from tests.support.crds import install_istio_crds  # noqa: E402

NAMESPACE = "bench"
GROUP, VERSION, PLURAL = "mlpatterns.io", "v1alpha1", "modelservices"


def model_service(name: str, split: tuple[int, int] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "versions": [{"name": "a", "model": {"uri": "models:/iris@production"}}],
    }
    if split is not None:
        spec["versions"].append({"name": "b", "model": {"uri": "models:/iris@candidate"}})
        spec["traffic"] = {
            "split": [{"version": "a", "weight": split[0]}, {"version": "b", "weight": split[1]}]
        }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelService",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait(check: Any, timeout: float, every: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError("the operator did not converge in time")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        plane = ControlPlane(folder=Path(folder) / "cluster", die_with_parent=True)
        plane.start()
        try:
            run(plane, Path(folder))
        finally:
            plane.stop()


def run(plane: ControlPlane, folder: Path) -> None:
    install_istio_crds(plane)
    plane.kubectl("apply", "-f", str(REPO / "manifests/base/crd.yaml"))
    plane.kubectl("create", "namespace", NAMESPACE)
    log = (folder / "operator.log").open("wb")
    operator = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlpatterns")), "operator", "run", "-n", NAMESPACE],
        env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        config.load_kube_config(str(plane.kubeconfig))
        custom = client.CustomObjectsApi()
        measure_patches(custom)
        measure_many(custom)
    finally:
        operator.terminate()
        operator.wait(timeout=30)


def measure_patches(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, model_service("iris", (90, 10))
    )

    def weights() -> list[int]:
        try:
            found = custom.get_namespaced_custom_object(
                "networking.istio.io", "v1", NAMESPACE, "virtualservices", "iris"
            )
        except client.ApiException:
            return []
        return [r["weight"] for r in found["spec"]["http"][-1]["route"]]

    wait(lambda: weights() == [90, 10], 60, 0.1)
    seconds = []
    for number in range(50):
        share = 10 + (number % 9) * 10 if number % 2 else 5 + number
        patch = {
            "spec": {
                "traffic": {
                    "split": [
                        {"version": "a", "weight": 100 - share},
                        {"version": "b", "weight": share},
                    ]
                }
            }
        }
        started = time.perf_counter()
        custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "iris", patch)
        wait(lambda s=share: weights() == [100 - s, s], 30)  # type: ignore[misc]
        seconds.append(time.perf_counter() - started)
    print(
        f"patch -> VirtualService weights over {len(seconds)} patches: "
        f"p50 {statistics.median(seconds) * 1e3:.0f} ms, p99 {quantile(seconds, 0.99) * 1e3:.0f} ms"
    )


def measure_many(custom: client.CustomObjectsApi, count: int = 100) -> None:
    started = time.perf_counter()
    for number in range(count):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, model_service(f"svc-{number:03d}")
        )
    created = time.perf_counter() - started

    def all_ready() -> bool:
        listed = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
        ready = [
            item
            for item in listed
            if item["metadata"]["name"].startswith("svc-")
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (item.get("status") or {}).get("conditions", [])
            )
        ]
        return len(ready) == count

    wait(all_ready, 600, 0.5)
    total = time.perf_counter() - started
    print(
        f"{count} ModelServices created in {created:.1f} s, all Ready after {total:.1f} s "
        f"({total / count * 1e3:.0f} ms each)"
    )
    print("(kwok runs the pods: this is reconcile time, not image pulls)")


if __name__ == "__main__":
    main()
