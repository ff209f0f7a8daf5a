"""The README's walkthrough on a real node: `helm install`, models into the chart's
MinIO, `kubectl apply -k` of the online and shadow A/B patterns, traffic switched
with `kubectl patch` and the kubectl plugin, a tampered model refused, and
`helm uninstall` leaving nothing behind. Requests go from this machine to the
Services' ClusterIPs; the tests run in file order, each building on the last.
"""

from __future__ import annotations

import functools
import io
import json
import re
import subprocess
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.support.walkthrough import (
    NAMESPACE,
    RELEASE,
    ROW,
    Walkthrough,
    assert_split,
    seconds_until,
    versions_answering,
)

pytestmark = pytest.mark.node


def test_helm_install_runs_the_platform_on_the_node(walkthrough: Walkthrough) -> None:
    pods = walkthrough.get("pods", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    components = {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods}
    assert {"operator", "storage", "queue"} <= components
    for pod in pods:
        if pod["status"].get("phase") == "Succeeded":  # the storage-grant hook's job
            continue
        assert pod["spec"]["nodeName"] == "mlp-node"
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"]
        assert ready == "True", pod["metadata"]["name"]
    operator = walkthrough.get("deployment", f"{RELEASE}-mlpatterns-operator")
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == f"{RELEASE}-mlpatterns"
    tested = walkthrough.run(
        "helm", "test", RELEASE, "-n", NAMESPACE, "--logs", "--timeout=180s"
    )  # fmt: skip
    assert "operator: http://" in tested
    assert "minio: http://" in tested
    assert "redis: PONG with the chart's password" in tested


def test_online_ab_splits_by_weight_and_switches_with_patch_and_plugin(
    walkthrough: Walkthrough, models: None
) -> None:
    ip = walkthrough.apply_pattern("online-ab", "iris-ab")
    assert_split(versions_answering(ip, 1000), {"current": 90, "candidate": 10})

    walkthrough.kubectl(
        "patch", "modelservice", "iris-ab", "--type=merge", "-p",
        json.dumps({"spec": {"traffic": {"split": [
            {"version": "current", "weight": 50}, {"version": "candidate", "weight": 50}]}}}),
    )  # fmt: skip
    state = functools.partial(walkthrough.traffic_state, "iris-ab")
    assert seconds_until(lambda seen: seen["candidate"] >= 15, ip, explain=state) < 10
    assert_split(versions_answering(ip, 1000), {"current": 50, "candidate": 50})

    walkthrough.run(
        "kubectl", "mlpatterns", "traffic", "iris-ab", "-n", NAMESPACE,
        "--split", "current=90,candidate=10",
    )  # fmt: skip
    assert seconds_until(lambda seen: seen["candidate"] <= 12, ip, explain=state) < 10
    assert_split(versions_answering(ip, 1000), {"current": 90, "candidate": 10})


def test_the_model_service_chart_runs_a_pattern_that_helm_test_checks(
    walkthrough: Walkthrough, models: None
) -> None:
    walkthrough.run(
        "helm", "install", "iris-chart", "charts/model-service", "-n", NAMESPACE,
        "-f", "charts/model-service/examples/online-ab.yaml", "--set", "name=iris-chart",
    )  # fmt: skip
    walkthrough.wait_ready("iris-chart")
    tested = walkthrough.run(
        "helm", "test", "iris-chart", "-n", NAMESPACE, "--logs", "--timeout=180s"
    )  # fmt: skip
    assert "iris-chart.mlpatterns.svc:8080/v2/health/ready answers 200" in tested
    walkthrough.run("helm", "uninstall", "iris-chart", "-n", NAMESPACE, "--wait", "--timeout=120s")


def test_shadow_ab_answers_from_the_primary_and_logs_every_request_in_the_shadow(
    walkthrough: Walkthrough, models: None
) -> None:
    ip = walkthrough.apply_pattern("shadow-ab", "iris-shadow")
    ids = [f"shadow-{n}-{uuid.uuid4().hex[:8]}" for n in range(100)]
    with httpx.Client(base_url=f"http://{ip}:8080", timeout=10) as client:
        versions_answering(ip, 20)  # warm both servers: a cold first inference is slow
        time.sleep(1)
        for request_id in ids:
            response = client.post("/predict", json=ROW, headers={"x-request-id": request_id})
            assert response.status_code == 200
            assert response.headers["x-mlpatterns-version"] == "current"
            assert response.headers["x-request-id"] == request_id
            # a client at the shadow's pace: past 64 copies in flight the gateway drops them
            time.sleep(0.01)
        dropped = [
            line
            for line in client.get("/-/metrics").text.splitlines()
            if line.startswith(
                ("mlpatterns_gateway_mirror_drops_total", "mlpatterns_gateway_shadow_skipped_total")
            )
        ]

    storage = walkthrough.minio()
    logged: set[str] = set()
    deadline = time.monotonic() + 60
    while not set(ids) <= logged and time.monotonic() < deadline:
        time.sleep(1)
        for item in storage.list_objects(
            "mlpatterns", prefix="logs/predictions/iris-shadow/candidate/", recursive=True
        ):
            body = storage.get_object("mlpatterns", str(item.object_name))
            try:
                for line in body.read().decode().splitlines():
                    logged.add(json.loads(line)["request_id"])
            finally:
                body.close()
                body.release_conn()
    missing = len(set(ids) - logged)
    assert not missing, f"{missing} requests missing from the shadow's log; the gateway: {dropped}"
    # the report reads every pod's records from the bucket, as a user with serving's rights
    shown = subprocess.run(
        ["mlpatterns", "report", "shadow", "iris-shadow", "--from", "s3://mlpatterns"],
        env={**walkthrough.env, **walkthrough.s3_env("serving"), "COLUMNS": "200"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    pairs = re.search(r"agreement [\d.]+% over \d+ rows in (\d+) requests", shown.stdout)
    assert pairs is not None, shown.stdout
    assert int(pairs.group(1)) >= len(ids)


def rolled_out(name: str, steps: list[dict[str, Any]], timeout: float | None = None) -> str:
    parameters = {"parameters": {"timeoutSeconds": timeout}} if timeout else {}
    service = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name},
        "spec": {
            "versions": [
                {"name": "current", "model": {"uri": "models:/iris@production"}},
                {"name": "candidate", "model": {"uri": "models:/iris@candidate"}, **parameters},
            ],
            "rollout": {
                "candidate": "candidate",
                "steps": steps,
                "analysis": {"intervalSeconds": 6, "minRequests": 10, "failureLimit": 1,
                             "maxErrorRate": 0.05, "minShadowAgreement": 0.6},
            },
            "logging": {"predictions": True},
        },
    }  # fmt: skip
    return json.dumps(service)


def test_the_operator_rolls_out_from_the_pods_own_metrics_without_prometheus(
    walkthrough: Walkthrough, models: None
) -> None:
    good, bad = "iris-steps", "iris-steps-bad"
    steps = [{"shadow": True, "requests": 20}, {"weight": 50, "requests": 20}, {"weight": 100}]
    walkthrough.kubectl("apply", "-f", "-", input=rolled_out(good, steps))
    # every answer of this candidate times out at the gateway: 504s, counted in its pod
    walkthrough.kubectl("apply", "-f", "-", input=rolled_out(bad, [{"weight": 50}], 0.0001))
    for name in (good, bad):
        walkthrough.wait_ready(name)
    ips = {name: walkthrough.answering(name) for name in (good, bad)}

    def phase(name: str) -> str:
        rollout = (walkthrough.get("modelservice", name).get("status") or {}).get("rollout")
        return str((rollout or {}).get("phase", ""))

    deadline, sent = time.monotonic() + 300, 0
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline and sent < 20_000:
            waiting = [n for n in (good, bad) if phase(n) in ("", "Progressing")]
            if not waiting:
                break
            for name in waiting:
                for _ in range(25):
                    client.post(f"http://{ips[name]}:8080/predict", json=ROW,
                                headers={"x-user-id": uuid.uuid4().hex})  # fmt: skip
                    sent += 1
    status = {n: walkthrough.get("modelservice", n)["status"]["rollout"] for n in (good, bad)}
    assert status[good]["phase"] == "Succeeded", status[good]
    assert status[bad]["phase"] == "RolledBack", status[bad]
    # no Prometheus in this release: the counts are the gateway pods' own
    last = status[good]["lastAnalysis"]
    assert last["step"] >= 1, last
    assert last["requests"] >= 10, last
    assert "errorRate" in status[bad]["message"], status[bad]
    assert versions_answering(ips[good], 30) == Counter({"candidate": 30})
    assert versions_answering(ips[bad], 30) == Counter({"current": 30})
    reasons = [
        e["reason"]
        for e in walkthrough.get("events", "--field-selector", f"involvedObject.name={good}")[
            "items"
        ]
    ]
    assert {"RolloutStarted", "RolloutAdvanced", "RolloutPromoted"} <= set(reasons), reasons
    walkthrough.kubectl("delete", "modelservice", good, bad, "--wait=true", "--timeout=120s")


def test_a_tampered_model_never_serves_and_the_service_says_why(
    walkthrough: Walkthrough, models: None
) -> None:
    storage = walkthrough.minio()
    listing = storage.list_objects("mlpatterns", prefix="models/iris/versions/", recursive=True)
    key = str(next(iter(listing)).object_name)
    response = storage.get_object("mlpatterns", key)
    metadata = json.loads(response.read())
    response.close()
    metadata["name"] = "tampered"
    for file_name, digest in metadata["files"].items():
        blob = storage.get_object("mlpatterns", f"models/iris/blobs/{digest}")
        data = blob.read()
        blob.close()
        if file_name == "model.onnx":
            data += b"\0"  # one byte more than the digest in its metadata
        storage.put_object(
            "mlpatterns", f"models/tampered/blobs/{digest}", _stream(data), len(data)
        )
    text = json.dumps(metadata).encode()
    storage.put_object("mlpatterns", key.replace("/iris/", "/tampered/"), _stream(text), len(text))

    service = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "tampered"},
        "spec": {
            "pattern": "synchronous",
            "versions": [
                {"name": "v1", "model": {"uri": f"models:/tampered/{metadata['version']}"}}
            ],
        },
    }
    walkthrough.kubectl("apply", "-f", "-", input=json.dumps(service))

    def degraded() -> dict[str, Any] | None:
        status = walkthrough.get("modelservice", "tampered").get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        found = conditions.get("Degraded")
        return found if found and found["status"] == "True" else None

    deadline = time.monotonic() + 240  # pods start slowly on a node this busy
    while degraded() is None and time.monotonic() < deadline:
        time.sleep(1)
    condition = degraded()
    if condition is None:  # say what the operator and the pods saw
        pods = walkthrough.get("pods", "-l", "mlpatterns.io/service=tampered")["items"]
        raise AssertionError(
            f"not Degraded: {walkthrough.get('modelservice', 'tampered').get('status')}\n"
            f"pods: {[p['status'].get('initContainerStatuses') for p in pods]}\n"
            + walkthrough.kubectl("logs", f"deployment/{RELEASE}-mlpatterns-operator", "--tail=40")
        )
    assert condition["reason"] == "ModelLoadFailed"
    assert condition["message"].startswith("v1: pod tampered-v1-")
    assert "does not match the recorded" in condition["message"], condition["message"]
    pods = walkthrough.get("pods", "-l", "mlpatterns.io/service=tampered,version=v1")["items"]
    readiness = [
        c["status"] for p in pods for c in p["status"]["conditions"] if c["type"] == "Ready"
    ]
    assert readiness
    assert set(readiness) == {"False"}


def test_helm_uninstall_leaves_no_pod_object_or_container(walkthrough: Walkthrough) -> None:
    walkthrough.kubectl("delete", "modelservices", "--all", "--wait=true", "--timeout=120s")
    walkthrough.run("helm", "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=120s")
    walkthrough.kubectl("wait", "--for=delete", "pods", "--all", "--timeout=120s")
    left = walkthrough.kubectl(
        "get", "all,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies",
        "-o", "name",
    )  # fmt: skip
    kept_by_kubernetes = ("configmap/kube-root-ca.crt", "serviceaccount/default")
    assert [name for name in left.split() if name not in kept_by_kubernetes] == []
    socket = walkthrough.cluster.node.containerd_socket
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        containers = _containers_of(socket, NAMESPACE)
        if not containers:
            break
        time.sleep(1)
    assert _containers_of(socket, NAMESPACE) == []


def _containers_of(socket: Any, namespace: str) -> list[str]:
    listing = subprocess.run(
        ["ctr", f"--address={socket}", "--namespace=k8s.io", "containers", "list"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    ids = [line.split()[0] for line in listing.splitlines()[1:]]
    found = []
    for container in ids:
        info = subprocess.run(
            ["ctr", f"--address={socket}", "--namespace=k8s.io", "containers", "info", container],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        if info and json.loads(info)["Labels"].get("io.kubernetes.pod.namespace") == namespace:
            found.append(container)
    return found


def _stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
