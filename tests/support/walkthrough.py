"""The README's walkthrough steps on a real node, shared by its tests and benchmarks:
the platform chart installed with images built here, models registered into its
MinIO, and predictions sent to a Service's ClusterIP from this machine."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import yaml
from minio import Minio
from scipy.stats import chisquare

from tests.support.images import Image, build, chart_values, import_into_containerd
from tests.support.testcluster import RealCluster

__all__ = [
    "NAMESPACE",
    "RELEASE",
    "ROW",
    "Walkthrough",
    "assert_split",
    "enable_training",
    "fetched_model",
    "following",
    "install_platform",
    "probabilities",
    "register_models",
    "seconds_until",
    "versions_answering",
]

NAMESPACE = "mlpatterns"
RELEASE = "mlp"
ROW = {"data": [[5.1, 3.5, 1.4, 0.2]]}


@dataclass
class Walkthrough:
    cluster: RealCluster
    env: dict[str, str]

    def run(self, *argv: str, input: str | None = None, timeout: float = 300) -> str:
        out = subprocess.run(
            list(argv), env=self.env, input=input, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        assert out.returncode == 0, f"{' '.join(argv)}:\n{out.stderr}"
        return out.stdout

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.run("kubectl", "-n", NAMESPACE, *args, input=input)

    def get(self, *args: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return found

    def cluster_ip(self, service: str) -> str:
        return str(self.get("service", service)["spec"]["clusterIP"])

    def s3_env(self, user: str = "training") -> dict[str, str]:
        """MinIO's address and a user's keys: the chart's training user, or its serving
        user (the Secret the operator hands every serving pod)."""
        name = f"{RELEASE}-mlpatterns-storage" + ("" if user == "serving" else f"-{user}")
        secret = self.get("secret", name)["data"]
        key = base64.b64decode(secret["MLPATTERNS_S3_SECRET_KEY"]).decode()
        access = base64.b64decode(secret["MLPATTERNS_S3_ACCESS_KEY"]).decode()
        return {
            "MLPATTERNS_S3_ENDPOINT": f"{self.cluster_ip(f'{RELEASE}-mlpatterns-minio')}:9000",
            "MLPATTERNS_S3_SECURE": "false",
            "MLPATTERNS_S3_ACCESS_KEY": access,
            "MLPATTERNS_S3_SECRET_KEY": key,
        }

    def minio(self) -> Minio:
        env = self.s3_env()
        return Minio(
            env["MLPATTERNS_S3_ENDPOINT"],
            access_key=env["MLPATTERNS_S3_ACCESS_KEY"],
            secret_key=env["MLPATTERNS_S3_SECRET_KEY"],
            secure=False,
        )

    def apply_pattern(self, pattern: str, name: str, answers: int = 200) -> str:
        """`kubectl apply -k manifests/patterns/<pattern>`, wait until Ready and until its
        Service answers (`answering`); its ClusterIP."""
        self.run("kubectl", "apply", "-n", NAMESPACE, "-k", f"manifests/patterns/{pattern}")
        self.wait_ready(name)
        return self.answering(name, answers)

    def answering(self, name: str, answers: int = 200) -> str:
        """The ClusterIP of Ready `name` once its Service answers a prediction with
        `answers` (kube-proxy programs the endpoints a moment after the pods are Ready)."""
        ip = self.cluster_ip(name)
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(f"http://{ip}:8080/predict", json=ROW, timeout=2)
                if answer.status_code == answers:
                    return ip
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} is Ready but its Service did not answer in 30 s")
            time.sleep(0.2)

    def traffic_state(self, name: str) -> str:
        """Where a traffic switch of `name` has got to, for a failure's message: the
        split asked for, the one the operator last handled, the one in the gateway's
        routes ConfigMap, and the operator's and gateway's last log lines."""
        said = []
        service = self.get("modelservice", name)
        handled = (
            service["metadata"]
            .get("annotations", {})
            .get("operator.mlpatterns.io/last-handled-configuration", "{}")
        )
        routes = self.get("configmap", f"{name}-routes")["data"]["modelservice.yaml"]
        said.append(f"asked: {service['spec'].get('traffic')}")
        said.append(f"handled: {json.loads(handled).get('spec', {}).get('traffic')}")
        said.append(f"routes: {yaml.safe_load(routes)['spec'].get('traffic')}")
        # the operator's last 200: a failed handler's traceback, and its retries, fit
        for workload, lines in (
            (f"deploy/{RELEASE}-mlpatterns-operator", 200),
            (f"deploy/{name}-gateway", 25),
        ):
            logs = subprocess.run(
                ["kubectl", "-n", NAMESPACE, "logs", workload, f"--tail={lines}",
                 "--all-containers"],
                env=self.env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            said.append(f"{workload}:\n{logs.stdout}{logs.stderr}")
        return "\n".join(said)

    def wait_ready(self, name: str, timeout: int = 240) -> None:
        self.kubectl(
            "wait", "--for=condition=Ready", f"modelservice/{name}", f"--timeout={timeout}s"
        )


def install_platform(walk: Walkthrough, images: Mapping[str, Image]) -> None:
    """`helm install` of the platform chart with the images built here, as the docs run it
    (the values file is what `hack/images/build --values` writes)."""
    values = walk.cluster.folder / "images.yaml"
    values.write_text(yaml.safe_dump(chart_values(images.values())))
    walk.run(
        "helm", "install", RELEASE, "charts/mlpatterns", "-n", NAMESPACE, "--create-namespace",
        "-f", str(values), "--set", "minio.enabled=true", "--set", "redis.enabled=true",
        "--wait", "--timeout=240s",
    )  # fmt: skip


def register_models(walk: Walkthrough, home: Path) -> None:
    """Train and register iris@production and iris@candidate into the chart's MinIO,
    as the README does: `mlpatterns quickstart --no-serve` with the training user's keys."""
    env = {**walk.env, **walk.s3_env(), "MLPATTERNS_HOME": str(home)}
    subprocess.run(
        ["mlpatterns", "quickstart", "--no-serve"], env=env, check=True, capture_output=True,
        timeout=600,
    )  # fmt: skip


def enable_training(walk: Walkthrough, folder: Path, *settings: str) -> str:
    """The chart's training CronJob, suspended (Jobs are made from it by hand), with the
    training image built here, and `settings` (`key=value` chart values); its name."""
    [image] = build(["training"])
    import_into_containerd(walk.cluster.node.containerd_socket, [image])
    values = folder / "training-image.yaml"
    values.write_text(yaml.safe_dump(chart_values([image])))
    chosen = [arg for setting in settings for arg in ("--set", setting)]
    walk.run(
        "helm", "upgrade", RELEASE, "charts/mlpatterns", "-n", NAMESPACE, "--reuse-values",
        "-f", str(values), "--set", "training.enabled=true", "--set", "training.suspend=true",
        *chosen, "--wait", "--timeout=240s",
    )  # fmt: skip
    return f"{RELEASE}-mlpatterns-training"


def following(name: str, alias: str) -> dict[str, Any]:
    """A ModelService (web single) serving `models:/iris@<alias>`, rolling when it moves."""
    return {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name},
        "spec": {
            "pattern": "web-single",
            "versions": [{"name": "v1", "model": {"uri": f"models:/iris@{alias}"}}],
        },
    }


def fetched_model(walk: Walkthrough, reference: str, folder: Path) -> bytes:
    """A model's whole pipeline (model.onnx), fetched from the chart's MinIO into
    `folder` with the serving user's keys, as a pod fetches it."""
    subprocess.run(
        ["mlpatterns", "fetch-model", reference, str(folder)],
        env={**walk.env, **walk.s3_env("serving"), "MLPATTERNS_HOME": str(folder)},
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return (folder / "model.onnx").read_bytes()


def probabilities(ip: str, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """A Service's answer for `rows`, as a matrix."""
    answer = httpx.post(f"http://{ip}:8080/predict", json={"data": rows.tolist()}, timeout=30)
    assert answer.status_code == 200, answer.text
    return np.asarray(answer.json()["probabilities"], dtype=np.float32)


def versions_answering(ip: str, count: int, headers: dict[str, str] | None = None) -> Counter[str]:
    """Send `count` predictions, each from a new user; which version answered each."""
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=f"http://{ip}:8080", timeout=10) as client:
        for _ in range(count):
            user = {"x-user-id": uuid.uuid4().hex, **(headers or {})}
            response = client.post("/predict", json=ROW, headers=user)
            if response.status_code != 200:
                raise AssertionError(f"{response.status_code} from the gateway: {response.text}")
            seen[response.headers["x-mlpatterns-version"]] += 1
    return seen


def assert_split(seen: Counter[str], weights: dict[str, int]) -> None:
    """The answers by version are a sample of the weights (chi-square, p > 0.01)."""
    total = sum(seen.values())
    observed = [seen[v] for v in weights]
    expected = [total * w / 100 for w in weights.values()]
    assert sum(observed) == total, seen
    assert chisquare(observed, expected).pvalue > 0.01, (seen, weights)


def seconds_until(
    shifted: Callable[[Counter[str]], bool],
    ip: str,
    limit: float = 30,
    headers: dict[str, str] | None = None,
    explain: Callable[[], str] = str,
) -> float:
    """Seconds until 50 answers in a row show `shifted`; `explain()` says why not."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if shifted(versions_answering(ip, 50, headers)):
            return time.monotonic() - started
    raise AssertionError(f"the answers did not move within {limit:.0f}s\n{explain()}")
