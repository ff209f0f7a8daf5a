"""Workloads beyond a request and its answer, on a real node: the asynchronous
pattern's jobs end done exactly once though a worker pod is deleted; the batch
CronJob predicts rows in MinIO once though a Job is deleted mid-run; a model built
into its image (`mlpatterns build-context`, then `hack/images/build --context`) is
served with no access to the registry; a Job of the chart's training CronJob
registers a model that a ModelService following its alias then serves; the pod a
`spec.router: seldon` predictor runs serves under Seldon's wrapper. Each test removes
what it applied."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_iris

from mlpatterns.api.load import load_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.render import RenderOptions, render
from mlpatterns.serving.jobs.redis_queue import RedisQueue
from mlpatterns.training.export import predict_proba
from tests.support.images import Image, build, import_into_containerd
from tests.support.peers import peer_client
from tests.support.processes import NotReadyError, wait_until
from tests.support.walkthrough import (
    NAMESPACE,
    RELEASE,
    Walkthrough,
    enable_training,
    fetched_model,
    following,
    probabilities,
)
from tests.support.workloads import (
    ROWS,
    await_results,
    batch_summary,
    iris_rows_csv,
    served_version,
    submit_jobs,
)

pytestmark = pytest.mark.node
REPO = Path(__file__).resolve().parents[2]
IN_IMAGE = "registry.local/mlpatterns/iris:candidate"  # as manifests/patterns/model-in-image


def worker_pods(walkthrough: Walkthrough) -> set[str]:
    """The asynchronous pattern's worker pods that are not being deleted."""
    pods = walkthrough.get("pods", "-l", "app.kubernetes.io/instance=iris-async-v1-worker")
    return {
        p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")
    }


def test_asynchronous_jobs_end_done_exactly_once_though_a_worker_pod_is_deleted(
    walkthrough: Walkthrough, production_model: bytes, applied: list[str]
) -> None:
    """Four clients submit 500 jobs through the API pods while one of the two worker
    pods is deleted; every job ends done once (the chart's Redis counts completions)
    with the model's own answer for its row."""
    applied.append("iris-async")
    ip = walkthrough.apply_pattern("asynchronous", "iris-async", answers=202)
    jobs: dict[str, int] = {}
    url = f"http://{ip}:8080"
    with ThreadPoolExecutor(1) as pool:
        submitting = pool.submit(submit_jobs, url, 500, jobs=jobs)
        while len(jobs) < 150 and not submitting.done():
            time.sleep(0.05)
        deleted = sorted(worker_pods(walkthrough))[0]
        walkthrough.kubectl("delete", "pod", deleted, "--wait=false")
        submitting.result(timeout=600)
    assert len(jobs) == 500

    results = await_results(url, jobs, 180)  # a job its deleted worker held waits out its lease
    assert len(results) == len(jobs), f"{len(jobs) - len(results)} jobs not done in 180 s"
    expected = np.argmax(predict_proba(production_model, ROWS), axis=1)
    classes = load_iris().target_names
    assert {job: results[job] for job in jobs} == {
        job: classes[expected[row]] for job, row in jobs.items()
    }
    password = walkthrough.get("secret", f"{RELEASE}-mlpatterns-redis")["data"]["redis-password"]
    queue = RedisQueue(
        f"redis://{walkthrough.cluster_ip(f'{RELEASE}-mlpatterns-redis')}:6379/0",
        namespace="iris-async-v1",
        password=base64.b64decode(password).decode(),
    )
    try:
        assert Counter(queue.completions(job) for job in jobs) == Counter({1: 500})
    finally:
        queue.close()
    names = worker_pods(walkthrough)
    assert deleted not in names, names
    assert len(names) == 2, names  # the Deployment replaced it


def test_multiple_stage_answers_light_at_once_and_heavy_at_the_request_id(
    walkthrough: Walkthrough,
    production_model: bytes,
    applied: list[str],
    tmp_path: Path,
) -> None:
    """manifests/patterns/multiple-stage through the gateway's Service: iris@production
    answers the request; iris@candidate's answer to it follows at /jobs/<request id>,
    from the heavy version's async API and worker (their queue in the chart's Redis)."""
    candidate = fetched_model(walkthrough, "models:/iris@candidate", tmp_path)
    applied.append("iris-stages")
    url = f"http://{walkthrough.apply_pattern('multiple-stage', 'iris-stages')}:8080"
    rows = ROWS[:20]
    light = httpx.post(
        f"{url}/predict", json={"data": rows.tolist()}, headers={"x-request-id": "node-1"}
    )
    assert light.status_code == 200, light.text
    assert light.headers["x-mlpatterns-version"] == "light"
    assert light.headers["x-mlpatterns-follow-up"] == "/jobs/node-1"
    answered = np.array(light.json()["probabilities"])
    assert np.max(np.abs(answered - predict_proba(production_model, rows))) <= 1e-5
    found: dict[str, Any] = {}

    def heavy_done() -> bool:
        found.update(httpx.get(f"{url}/jobs/node-1", timeout=5).json())
        return found.get("state") == "done"

    wait_until("the heavy answer", heavy_done, 60)
    heavy = np.array(found["result"]["probabilities"])
    assert np.max(np.abs(heavy - predict_proba(candidate, rows))) <= 1e-5


def test_an_ensemble_answers_its_models_mean_through_the_gateway(
    walkthrough: Walkthrough,
    production_model: bytes,
    applied: list[str],
    tmp_path: Path,
) -> None:
    """manifests/patterns/microservice-horizontal through its Service: the gateway calls
    both versions' pods and answers the mean of their probabilities."""
    candidate = fetched_model(walkthrough, "models:/iris@candidate", tmp_path)
    applied.append("iris-ensemble")
    url = f"http://{walkthrough.apply_pattern('microservice-horizontal', 'iris-ensemble')}:8080"
    rows = ROWS[:20]
    answered: dict[str, httpx.Response] = {}

    def both() -> bool:
        # a step still cold (its first requests) may miss the 0.5 s deadline, and the
        # example's onError: skip then answers without it, as declared
        answer = httpx.post(f"{url}/predict", json={"data": rows.tolist()}, timeout=10)
        answered["last"] = answer
        return bool(answer.headers.get("x-mlpatterns-version") == "logistic,forest")

    try:
        wait_until("both steps in the answer", both, 60)
    except NotReadyError:
        steps = answered["last"].headers.get("x-mlpatterns-graph")
        raise AssertionError(f"the last answer's steps: {steps}") from None
    answer = answered["last"]
    assert answer.status_code == 200, answer.text
    expected = (predict_proba(production_model, rows) + predict_proba(candidate, rows)) / 2
    assert np.max(np.abs(np.array(answer.json()["probabilities"]) - expected)) <= 1e-5


def job_report(walkthrough: Walkthrough, job: str) -> str:
    """Where a Job has got to, for a failure's message: the pods (of the whole node),
    the Job and its events, its last log lines."""
    found = []
    for argv in (
        ("kubectl", "get", "pods", "-A", "-o", "wide"),
        ("kubectl", "-n", NAMESPACE, "describe", "job", job),
        ("kubectl", "-n", NAMESPACE, "logs", f"job/{job}", "--tail=20"),
        ("kubectl", "-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp"),
    ):
        try:
            said = walkthrough.run(*argv, timeout=30)
        except (AssertionError, subprocess.TimeoutExpired) as error:
            said = f"({error})"
        found.append(f"$ {' '.join(argv)}\n{said[-4000:]}")
    return "\n".join(found)


def test_the_batch_cron_job_predicts_rows_in_minio_once_though_a_job_is_killed(
    walkthrough: Walkthrough, production_model: bytes, applied: list[str]
) -> None:
    """`kubectl create job --from=cronjob/...` on the object-store overlay: a first Job
    deleted once it has written some parts, then a rerun that predicts only the rest;
    every id is in the parts once, labelled as the model labels its row in process."""
    rows, parts = 4_000_000, "batch/iris-predictions.parquet/"
    minio = walkthrough.minio()
    data = iris_rows_csv(rows)
    minio.put_object("mlpatterns", "batch/iris-rows.csv", io.BytesIO(data), len(data))
    applied.append("iris-batch")
    walkthrough.run(
        "kubectl", "apply", "-n", NAMESPACE, "-k", "manifests/overlays/batch-object-store"
    )
    wait_until("the CronJob", lambda: bool(walkthrough.get("cronjobs")["items"]), 60)
    walkthrough.kubectl("create", "job", "--from=cronjob/iris-batch", "iris-batch-killed")

    def written() -> list[str]:
        return [str(o.object_name) for o in minio.list_objects("mlpatterns", parts)]

    wait_until("a first part", lambda: bool(written()), 240)
    walkthrough.kubectl("delete", "job", "iris-batch-killed", "--cascade=foreground")
    keys = walkthrough.s3_env()
    store = pafs.S3FileSystem(
        access_key=keys["MLPATTERNS_S3_ACCESS_KEY"], secret_key=keys["MLPATTERNS_S3_SECRET_KEY"],
        endpoint_override=keys["MLPATTERNS_S3_ENDPOINT"], scheme="http", region="us-east-1",
    )  # fmt: skip
    done = pq.read_table(f"mlpatterns/{parts}", filesystem=store).num_rows
    assert 0 < done < rows, f"{done} of {rows} rows: the Job ended before it could be killed"

    walkthrough.kubectl("create", "job", "--from=cronjob/iris-batch", "iris-batch-rerun")
    try:
        walkthrough.run("kubectl", "-n", NAMESPACE, "wait", "--for=condition=complete",
                        "job/iris-batch-rerun", "--timeout=300s", timeout=330)  # fmt: skip
    except (AssertionError, subprocess.TimeoutExpired):
        raise AssertionError(
            f"the rerun Job did not complete in 300 s; {len(written())} parts written\n"
            + job_report(walkthrough, "iris-batch-rerun")
        ) from None
    summary = batch_summary(walkthrough.kubectl("logs", "job/iris-batch-rerun"))
    assert (summary["skipped"], summary["predicted"]) == (done, rows - done)
    table = pq.read_table(f"mlpatterns/{parts}", filesystem=store, columns=["id", "label"])
    ids = pc.cast(table.column("id"), pa.int64()).to_numpy()
    assert len(ids) == rows
    assert len(np.unique(ids)) == rows  # every id once, none twice
    classes = load_iris().target_names
    expected = classes[np.argmax(predict_proba(production_model, ROWS), axis=1)]
    labels = np.asarray(table.column("label").to_pylist())
    assert (labels == expected[ids % len(ROWS)]).all()


def test_a_model_built_into_its_image_is_served_with_no_registry_access(
    walkthrough: Walkthrough, applied: list[str], tmp_path: Path
) -> None:
    """The model-in-image pattern: its pod has no init container fetching the model
    and serves the copy in its image (the object store's keys it holds are for the
    prediction log), answering as the candidate model does in process."""
    env = {**walkthrough.env, **walkthrough.s3_env("serving"), "MLPATTERNS_HOME": str(tmp_path)}
    context = tmp_path / "context"
    subprocess.run(
        ["mlpatterns", "build-context", "models:/iris@candidate",
         "--image", IN_IMAGE.rpartition(":")[0], "-o", str(context)],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    socket = walkthrough.cluster.node.containerd_socket
    built = subprocess.run(
        [str(REPO / "hack/images/build"), "--context", str(context), "--tag", IN_IMAGE,
         "--containerd", str(socket)],
        env=walkthrough.env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    candidate = fetched_model(walkthrough, "models:/iris@candidate", tmp_path / "candidate")
    # a spec may name an image only from a registry the chart allows
    walkthrough.run(
        "helm", "upgrade", RELEASE, "charts/mlpatterns", "-n", NAMESPACE, "--reuse-values",
        "--set", "operator.allowedImageRegistries={registry.local}", "--wait", "--timeout=240s",
    )  # fmt: skip
    applied.append("iris-in-image")
    ip = walkthrough.apply_pattern("model-in-image", "iris-in-image")
    served = probabilities(ip, ROWS)
    assert np.max(np.abs(served - predict_proba(candidate, ROWS))) <= 1e-5
    pods = walkthrough.get("pods", "-l", "mlpatterns.io/service=iris-in-image,version=v1")
    assert pods["items"]
    for pod in pods["items"]:
        assert not pod["spec"].get("initContainers")
        [server] = pod["spec"]["containers"]
        assert server["image"] == IN_IMAGE
        assert server["args"][:4] == ["serve", "model", "--model", "/model"]  # the image's


def test_a_training_job_registers_a_model_that_the_alias_following_service_then_serves(
    walkthrough: Walkthrough, applied: list[str], tmp_path: Path
) -> None:
    """Batch training as Kubernetes runs it: a Job made from the chart's training
    CronJob trains in the training image, passes the gate and registers into MinIO,
    moving iris@candidate; a ModelService serving models:/iris@candidate rolls to the
    new model, which answers as it does in process."""
    cron_job = enable_training(walkthrough, tmp_path, "training.params=C=0.5")
    applied.append("iris-follow")
    walkthrough.kubectl("apply", "-f", "-", input=json.dumps(following("iris-follow", "candidate")))
    walkthrough.wait_ready("iris-follow")
    ip = walkthrough.answering("iris-follow")
    url = f"http://{ip}:8080"
    before = served_version(url)

    walkthrough.kubectl("create", "job", f"--from=cronjob/{cron_job}", "iris-train-now")
    walkthrough.kubectl("wait", "--for=condition=complete", "job/iris-train-now", "--timeout=600s")
    env = {**walkthrough.env, **walkthrough.s3_env("serving"), "MLPATTERNS_HOME": str(tmp_path)}
    listed = subprocess.run(
        ["mlpatterns", "models", "ls", "-o", "json"],
        env=env, check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    [trained] = [m for m in json.loads(listed.stdout) if "candidate" in m["aliases"]]
    assert trained["version"] != before
    assert trained["metrics"]["accuracy"] >= 0.9  # the chart's default gate
    wait_until("the new model answering", lambda: served_version(url) == trained["version"], 240)
    model = fetched_model(walkthrough, f"models:/iris/{trained['version']}", tmp_path / "new")
    assert np.max(np.abs(probabilities(ip, ROWS) - predict_proba(model, ROWS))) <= 1e-5


def seldon_pod(service: ModelService, options: RenderOptions, version: str) -> dict[str, Any]:
    """The pod Seldon Core's operator would make for `version`'s predictor of the
    SeldonDeployment `service` renders as: the component's pod spec as rendered, plus
    what that operator (which does not run here) adds to the model's container: the
    graph's parameters and the ports, as environment."""
    [deployment] = render(service, options)
    predictor = next(p for p in deployment["spec"]["predictors"] if p["name"] == version)
    pod = predictor["componentSpecs"][0]["spec"]
    [model] = pod["containers"]
    model["env"] += [
        {
            "name": "PREDICTIVE_UNIT_PARAMETERS",
            "value": json.dumps(predictor["graph"]["parameters"]),
        },
        {"name": "PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "value": "9000"},
        {"name": "PREDICTIVE_UNIT_GRPC_SERVICE_PORT", "value": "9500"},
        {"name": "PREDICTIVE_UNIT_METRICS_SERVICE_PORT", "value": "6000"},
    ]
    model["ports"] = [
        {"name": "http", "containerPort": 9000},
        {"name": "grpc", "containerPort": 9500},
    ]
    model["readinessProbe"] = {
        "httpGet": {"path": "/health/status", "port": 9000},
        "periodSeconds": 2,
    }
    name = f"{deployment['metadata']['name']}-{version}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": predictor["labels"]},
        "spec": pod,
    }


def test_a_seldon_predictor_serves_the_registry_model_under_seldon_s_wrapper(
    walkthrough: Walkthrough,
    platform_images: dict[str, Image],
    production_model: bytes,
) -> None:
    """The seldon image on the node, in the pod spec `spec.router: seldon` renders: its
    init container fetches iris@production from the chart's MinIO and checks it, and
    Seldon's wrapper answers SeldonClient over REST and gRPC with the model's own
    probabilities."""
    [image] = build(["seldon"])
    import_into_containerd(walkthrough.cluster.node.containerd_socket, [image])
    options = RenderOptions(
        namespace=NAMESPACE,
        image=platform_images["serving"].reference,
        seldon_image=image.reference,
        image_pull_policy="Never",
        storage_secret=f"{RELEASE}-mlpatterns-storage",
    )
    service = load_model_service(REPO / "manifests" / "seldon" / "modelservice.yaml")
    pod = seldon_pod(service, options, "current")
    name = pod["metadata"]["name"]
    walkthrough.kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:
        walkthrough.kubectl("wait", f"pod/{name}", "--for=condition=Ready", "--timeout=240s")
        ip = walkthrough.get("pod", name)["status"]["podIP"]
        rows = ROWS[::10]
        got = peer_client("seldon", f"{ip}:9000", json.dumps(rows.tolist()), f"{ip}:9500")
        expected = predict_proba(production_model, rows)
        for answer in ("ndarray", "microservice_rest", "microservice_grpc"):
            assert got[answer]["success"], (answer, got[answer]["msg"])
            served = np.asarray(got[answer]["response"]["data"]["ndarray"])
            assert np.max(np.abs(served - expected)) <= 1e-5, answer
        assert not got["wrong_width"]["success"]
    finally:
        walkthrough.kubectl("delete", "pod", name, "--wait=true", "--timeout=60s")
