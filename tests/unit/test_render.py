"""render: a ModelService's Kubernetes objects, per pattern, as pure data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlpatterns.api.load import ModelServiceError, load_model_service, parse_model_service
from mlpatterns.cli.generated import expected_files
from mlpatterns.render import RenderOptions, render

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def pattern(name: str) -> Any:
    return load_model_service(ROOT / "manifests" / "patterns" / name / "modelservice.yaml")


def by_kind(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for item in objects:
        found.setdefault(item["kind"], []).append(item)
    return found


def pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = []
    for item in objects:
        if item["kind"] == "Deployment":
            specs.append(item["spec"]["template"]["spec"])
        if item["kind"] == "CronJob":
            specs.append(item["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return specs


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "manifests/patterns").iterdir()))
def test_every_pod_runs_with_least_privilege(name: str) -> None:
    objects = render(pattern(name), RenderOptions(namespace="ml", monitoring=True))
    assert objects
    roles = {r["metadata"]["name"]: r["rules"] for r in objects if r["kind"] == "Role"}
    for pod in pods(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True
        if pod["automountServiceAccountToken"]:  # only the gateway: it reads its routes
            account = pod["serviceAccountName"]
            assert account.endswith("-gateway")
            assert roles[f"{account}-routes"] == [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": [f"{account.removesuffix('-gateway')}-routes"],
                    "verbs": ["get", "list", "watch"],
                }
            ]
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]
    for item in objects:
        labels = item["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "mlpatterns"
        assert item["metadata"]["namespace"] == "ml"
        assert "mlpatterns.io/desired-hash" in item["metadata"]["annotations"]


def test_synchronous_model_load_probes_and_the_istio_routes() -> None:
    objects = by_kind(render(pattern("shadow-ab")))
    assert [d["metadata"]["name"] for d in objects["Deployment"]] == [
        "iris-shadow-current",
        "iris-shadow-candidate",
    ]
    pod = objects["Deployment"][0]["spec"]["template"]
    assert pod["metadata"]["labels"]["version"] == "current"
    init = pod["spec"]["initContainers"][0]
    assert init["args"] == ["fetch-model", "models:/iris@production", "/models/current"]
    server = pod["spec"]["containers"][0]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {"VirtualService", "DestinationRule"} <= set(objects)
    assert "ServiceMonitor" not in objects  # only when the Prometheus Operator is there


def test_gateway_router_reads_its_table_from_a_config_map() -> None:
    objects = by_kind(render(pattern("online-ab"), RenderOptions(router="gateway")))
    assert "VirtualService" not in objects
    [routes] = objects["ConfigMap"]
    assert "split" in routes["data"]["modelservice.yaml"]
    gateway = next(d for d in objects["Deployment"] if d["metadata"]["name"] == "iris-ab-gateway")
    arguments = gateway["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "current=http://iris-ab-current:8080" in arguments
    front = next(s for s in objects["Service"] if s["metadata"]["name"] == "iris-ab")
    assert front["spec"]["selector"]["app.kubernetes.io/instance"] == "iris-ab-gateway"


def test_sticky_splits_under_istio_add_the_deciding_gateway() -> None:
    objects = by_kind(render(pattern("online-ab")))
    names = {d["metadata"]["name"] for d in objects["Deployment"]}
    assert "iris-ab-gateway" in names
    http = objects["VirtualService"][0]["spec"]["http"]
    assert http[0]["match"] == [{"headers": {"x-mlpatterns-route": {"exact": "current"}}}]


def test_autoscaling_and_disruption_budget_when_asked() -> None:
    data = pattern("synchronous").model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["versions"][0].update(
        autoscaling={"minReplicas": 2, "maxReplicas": 5}, minAvailable=1
    )
    objects = by_kind(render(parse_model_service(data)))
    [hpa] = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert objects["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 1
    assert "replicas" not in objects["Deployment"][0]["spec"]  # the HPA owns it
    assert "behavior" not in hpa["spec"]  # Kubernetes' own: 300 s before scaling down
    data["spec"]["versions"][0]["autoscaling"]["scaleDownSeconds"] = 15
    [hpa] = by_kind(render(parse_model_service(data)))["HorizontalPodAutoscaler"]
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 15}}


def test_asynchronous_gets_a_queue_per_version_and_secrets_by_reference() -> None:
    data = pattern("asynchronous").model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["queue"] = {"secretName": "redis-credentials"}
    data["spec"]["storage"] = {"secretName": "s3-credentials"}
    objects = by_kind(render(parse_model_service(data)))
    api, worker = (
        d["spec"]["template"]["spec"]["containers"][0] for d in objects["Deployment"][:2]
    )
    for part in (api, worker):  # the address comes by reference, never as an argument
        assert "--queue" not in part["args"]
        namespace = part["args"][part["args"].index("--queue-namespace") + 1]
        assert namespace == "iris-async-v1"
        env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in part["env"]}
        assert env["MLPATTERNS_REDIS_URL"] == {
            "name": "redis-credentials",
            "key": "MLPATTERNS_REDIS_URL",
        }
        assert env["MLPATTERNS_REDIS_PASSWORD"] == {
            "name": "redis-credentials",
            "key": "MLPATTERNS_REDIS_PASSWORD",
            "optional": True,
        }
    assert api["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/health", "port": "health"}


@pytest.mark.attack
def test_the_charts_redis_password_reaches_pods_by_reference() -> None:
    options = RenderOptions(redis_secret="mlp-redis")
    objects = by_kind(render(pattern("asynchronous"), options))
    for deployment in objects["Deployment"][:2]:
        [part] = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in part["env"]}
        assert env["MLPATTERNS_REDIS_URL"]["value"] == "redis://mlpatterns-redis:6379/0"
        assert env["MLPATTERNS_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "mlp-redis",
            "key": "redis-password",
        }
    data = pattern("asynchronous").model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["queue"] = {"redisUrl": "redis://:hunter2@redis:6379/0"}
    with pytest.raises(ModelServiceError, match="must not carry credentials"):
        parse_model_service(data)


def test_batch_is_a_cron_job_that_never_overlaps() -> None:
    [job] = render(pattern("batch"))
    assert job["kind"] == "CronJob"
    spec = job["spec"]
    assert (spec["schedule"], spec["concurrencyPolicy"]) == ("0 * * * *", "Forbid")
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 3
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "iris-batch-data"}} in pod[
        "volumes"
    ]
    assert pod["containers"][0]["workingDir"] == "/data"


def test_model_in_image_runs_the_image_with_no_fetch() -> None:
    deployment = render(pattern("model-in-image"))[0]
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    container = pod["containers"][0]
    assert container["image"] == "registry.local/mlpatterns/iris:candidate"
    assert container["args"][:4] == ["serve", "model", "--model", "/model"]


def test_preprocess_prediction_chains_two_deployments() -> None:
    objects = by_kind(render(pattern("preprocess-prediction")))
    names = [d["metadata"]["name"] for d in objects["Deployment"]]
    assert names[:2] == ["iris-split-v1-predictor", "iris-split-v1"]
    front = objects["Deployment"][1]["spec"]["template"]["spec"]["containers"][0]
    assert "http://iris-split-v1-predictor:8080" in front["args"]


def test_generated_files_are_up_to_date() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in expected_files(ROOT).items()
        if not path.exists() or path.read_text() != text
    ]
    assert stale == [], "run hack/generate"


@pytest.mark.parametrize("name", ["shadow-ab", "batch", "asynchronous"])
def test_every_pod_pulls_with_the_secrets_named(name: str) -> None:
    named = RenderOptions(image_pull_secrets=("registry-a", "registry-b"))
    for pod in pods(render(pattern(name), named)):
        assert pod["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
    for pod in pods(render(pattern(name), RenderOptions())):
        assert "imagePullSecrets" not in pod
