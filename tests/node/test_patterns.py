"""Serving patterns on a real node, each applied with `kubectl apply -k
manifests/patterns/<pattern>` and asked from this machine through its Service's
ClusterIP: web-single and synchronous answer as the model does in process, the
preprocess-prediction pair as the whole pipeline does, the kill switch and a header
rule change who answers as clients see it, a rolling update and a replaced operator
lose nothing, and a version's HorizontalPodAutoscaler scales it out under load and
back in after it. Each test removes its ModelService, so the node carries one pattern
at a time."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from sklearn.datasets import load_iris

from mlpatterns.training.export import predict_proba
from tests.support.metrics_server import install_metrics_server
from tests.support.processes import wait_until
from tests.support.testcluster import RealCluster
from tests.support.walkthrough import (
    NAMESPACE,
    RELEASE,
    Walkthrough,
    assert_split,
    probabilities,
    seconds_until,
    versions_answering,
)

pytestmark = pytest.mark.node
ROWS = load_iris().data


@pytest.mark.parametrize(("pattern", "name"), [("web-single", "iris-web-single"),
                                                ("synchronous", "iris-sync")])  # fmt: skip
def test_a_pattern_answers_as_the_model_does_in_process(
    walkthrough: Walkthrough,
    production_model: bytes,
    applied: list[str],
    pattern: str,
    name: str,
) -> None:
    applied.append(name)
    ip = walkthrough.apply_pattern(pattern, name)
    served = probabilities(ip, ROWS)
    assert served.shape == (150, 3)
    assert np.max(np.abs(served - predict_proba(production_model, ROWS))) <= 1e-5
    pods = walkthrough.get("pods", "-l", f"mlpatterns.io/service={name},version=v1")["items"]
    ready = [
        p["metadata"]["name"]
        for p in pods
        if {c["type"]: c["status"] for c in p["status"]["conditions"]}.get("Ready") == "True"
    ]
    assert len(ready) == (1 if pattern == "web-single" else 2), ready
    # and over gRPC, at the version's own Service (the gateway routes HTTP only)
    client = triton_grpc.InferenceServerClient(f"{walkthrough.cluster_ip(f'{name}-v1')}:8081")
    try:
        tensor = triton_grpc.InferInput("input", list(ROWS.shape), "FP32")
        tensor.set_data_from_numpy(ROWS.astype(np.float32))
        answer = client.infer("iris", [tensor]).as_numpy("probabilities")
    finally:
        client.close()
    assert np.max(np.abs(answer - predict_proba(production_model, ROWS))) <= 1e-5


def test_the_preprocess_prediction_pair_answers_as_the_whole_pipeline(
    walkthrough: Walkthrough, production_model: bytes, applied: list[str]
) -> None:
    applied.append("iris-split")
    ip = walkthrough.apply_pattern("preprocess-prediction", "iris-split")
    components = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]
        for p in walkthrough.get("pods", "-l", "mlpatterns.io/service=iris-split")["items"]
    }
    assert {"preprocess", "predictor"} <= components
    served = probabilities(ip, ROWS)
    assert np.max(np.abs(served - predict_proba(production_model, ROWS))) <= 1e-5


def first_answer(ip: str, version: str, limit: float) -> None:
    """Ask until `version` answers. Its first requests after it was switched on may
    meet the pattern's 1 s timeout (a 504 naming it) while its server is cold on a
    busy node; any other failure fails the test."""
    deadline = time.monotonic() + limit
    with httpx.Client(base_url=f"http://{ip}:8080", timeout=10) as client:
        while time.monotonic() < deadline:
            user = {"x-user-id": uuid.uuid4().hex}  # each a new user: the split decides
            response = client.post("/predict", json={"data": ROWS[:1].tolist()}, headers=user)
            if response.status_code == 200:
                if response.headers["x-mlpatterns-version"] == version:
                    return
            elif response.status_code != 504 or f"version {version} " not in response.text:
                raise AssertionError(f"{response.status_code}: {response.text}")
    raise AssertionError(f"{version} did not answer within {limit:.0f} s")


def test_the_kill_switch_turns_a_version_off_and_on_for_clients(
    walkthrough: Walkthrough, applied: list[str]
) -> None:
    applied.append("iris-params")
    ip = walkthrough.apply_pattern("parameter-based", "iris-params")
    assert versions_answering(ip, 200) == Counter({"current": 200})  # candidate: active false

    def switch(active: bool) -> None:
        walkthrough.kubectl(
            "patch", "modelservice", "iris-params", "--type=json", "-p",
            f'[{{"op": "replace", "path": "/spec/versions/1/parameters/active", '
            f'"value": {str(active).lower()}}}]',
        )  # fmt: skip

    switch(True)
    first_answer(ip, "candidate", limit=90)
    assert_split(versions_answering(ip, 1000), {"current": 80, "candidate": 20})
    switch(False)
    seconds_until(lambda seen: seen["candidate"] == 0, ip, limit=90)
    assert versions_answering(ip, 200) == Counter({"current": 200})


def night_in_berlin() -> bool:
    """The condition-based pattern's time rule: 22:00 to 06:00, Europe/Berlin."""
    hour = datetime.now(ZoneInfo("Europe/Berlin")).hour
    return hour >= 22 or hour < 6


def test_a_header_rule_and_the_time_window_choose_who_answers(
    walkthrough: Walkthrough, applied: list[str]
) -> None:
    applied.append("iris-conditions")
    ip = walkthrough.apply_pattern("condition-based", "iris-conditions")
    # the serving image's gateway forwards with the compiled data plane
    assert httpx.get(f"http://{ip}:8080/-/health").json()["data_plane"] == "compiled"
    assert versions_answering(ip, 100, {"x-region": "eu"}) == Counter({"candidate": 100})
    for headers in ({"x-region": "us"}, None):
        before = night_in_berlin()
        seen = versions_answering(ip, 100, headers)
        if before == night_in_berlin():  # not across the window's edge while asking
            expected = "candidate" if before else "current"
            assert seen == Counter({expected: 100}), f"{headers}; night in Berlin: {before}"


def test_a_model_changed_under_load_rolls_with_no_failed_request(
    walkthrough: Walkthrough, applied: list[str]
) -> None:
    """Four clients, each on a kept-alive connection, ask all through a rolling update
    of the synchronous pattern's two servers to another model: every answer is 200."""
    applied.append("iris-sync")
    ip = walkthrough.apply_pattern("synchronous", "iris-sync")
    stop = threading.Event()
    answered: list[Counter[str]] = [Counter() for _ in range(4)]

    def ask(seen: Counter[str]) -> None:
        deadline = time.monotonic() + 300
        with httpx.Client(base_url=f"http://{ip}:8080", timeout=10) as client:
            while not stop.is_set() and time.monotonic() < deadline and seen.total() < 50_000:
                try:
                    response = client.post("/predict", json={"data": ROWS[:1].tolist()})
                except httpx.HTTPError as error:
                    seen[f"failed: {type(error).__name__}"] += 1
                    continue
                if response.status_code != 200:
                    seen[f"failed: {response.status_code}"] += 1
                else:
                    seen[response.headers["x-mlpatterns-model-version"]] += 1

    clients = [threading.Thread(target=ask, args=(seen,)) for seen in answered]
    for client in clients:
        client.start()
    try:
        time.sleep(3)
        walkthrough.kubectl(
            "patch", "modelservice", "iris-sync", "--type=json", "-p",
            '[{"op": "replace", "path": "/spec/versions/0/model/uri", '
            '"value": "models:/iris@candidate"}]',
        )  # fmt: skip
        time.sleep(5)  # the operator renders the new pods' template
        walkthrough.kubectl("rollout", "status", "deployment/iris-sync-v1", "--timeout=240s")
        time.sleep(3)
    finally:
        stop.set()
        for client in clients:
            client.join()
    seen = sum(answered, Counter())
    assert not [k for k in seen if k.startswith("failed")], seen
    assert len(seen) == 2, seen  # the model before, and the one after


def test_the_operator_replaced_mid_reconcile_converges_without_duplicates(
    walkthrough: Walkthrough, applied: list[str]
) -> None:
    applied.append("iris-ab")
    walkthrough.run("kubectl", "apply", "-n", NAMESPACE, "-k", "manifests/patterns/online-ab")
    time.sleep(0.5)  # the operator has the new ModelService and is applying its objects
    operator = f"app.kubernetes.io/component=operator,app.kubernetes.io/instance={RELEASE}"
    walkthrough.kubectl("delete", "pod", "-l", operator, "--wait=false")
    walkthrough.wait_ready("iris-ab", timeout=300)
    assert set(versions_answering(walkthrough.answering("iris-ab"), 100)) <= {
        "current",
        "candidate",
    }
    mine = "mlpatterns.io/service=iris-ab"
    deployments = [
        d["metadata"]["name"] for d in walkthrough.get("deployments", "-l", mine)["items"]
    ]
    assert sorted(deployments) == ["iris-ab-candidate", "iris-ab-current", "iris-ab-gateway"]
    live = [
        r["metadata"]["ownerReferences"][0]["name"]
        for r in walkthrough.get("replicasets", "-l", mine)["items"]
        if r["spec"].get("replicas")
    ]
    assert sorted(live) == sorted(deployments), live  # one template each: no second render
    services = [s["metadata"]["name"] for s in walkthrough.get("services", "-l", mine)["items"]]
    assert len(services) == len(set(services))


def scaling_service(name: str) -> dict[str, Any]:
    """Web single on iris@production, its one version scaled on CPU between 1 and 3
    pods, scaling down 15 s after the load is gone."""
    autoscaling = {"minReplicas": 1, "maxReplicas": 3, "cpuUtilization": 50,
                   "scaleDownSeconds": 15}  # fmt: skip
    version = {"name": "v1", "model": {"uri": "models:/iris@production"},
               "autoscaling": autoscaling}  # fmt: skip
    return {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": name},
        "spec": {"pattern": "web-single", "versions": [version]},
    }


def test_a_version_scales_out_under_load_and_back_in_after_it(
    walkthrough: Walkthrough, real_cluster: RealCluster, applied: list[str]
) -> None:
    """The HorizontalPodAutoscaler the operator renders, on metrics-server's figures:
    four clients asking without pause take the version from one pod to two or more;
    once they stop, it goes back to one."""
    install_metrics_server(real_cluster)
    applied.append("iris-scaling")
    walkthrough.kubectl("apply", "-f", "-", input=json.dumps(scaling_service("iris-scaling")))
    walkthrough.wait_ready("iris-scaling")
    ip = walkthrough.answering("iris-scaling")

    def replicas() -> int:
        return int(walkthrough.get("deployment", "iris-scaling-v1")["spec"]["replicas"])

    assert replicas() == 1
    stop = threading.Event()

    def ask() -> None:
        deadline = time.monotonic() + 240
        with httpx.Client(base_url=f"http://{ip}:8080", timeout=10) as client:
            for _ in range(200_000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                client.post("/predict", json={"data": ROWS.tolist()})

    clients = [threading.Thread(target=ask) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        wait_until("two pods or more under load", lambda: replicas() >= 2, 240)
    finally:
        stop.set()
        for client in clients:
            client.join()
    wait_until("one pod again without load", lambda: replicas() == 1, 240)
