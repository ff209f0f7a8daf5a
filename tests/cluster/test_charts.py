"""The Helm charts and Kustomize manifests against the real API server: lint, every
object accepted by a server-side dry run, and a helm install / upgrade / rollback /
uninstall that leaves nothing behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import repo_path
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.cluster
PLATFORM = repo_path("charts", "mlpatterns")
MODEL_SERVICE = repo_path("charts", "model-service")
EVERYTHING_ON = [
    "--set",
    "minio.enabled=true",
    "--set",
    "redis.enabled=true",
    "--set",
    "monitoring.prometheusRule=true",
    "--set",
    "monitoring.grafanaDashboard=true",
    "--set",
    "pipelines.enabled=true",
    "--set",
    "training.enabled=true",
]


def run(env: dict[str, str], *command: str, input: str | None = None) -> str:
    result = subprocess.run(
        list(command),
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize(
    "options",
    [
        [],
        EVERYTHING_ON,
        ["--set", "operator.scope=cluster"],
        # the README's kind walk-through
        [
            "--set",
            "minio.enabled=true",
            "--set",
            "redis.enabled=true",
            "--set",
            "image.pullPolicy=Never",
        ],
    ],
    ids=["defaults", "everything", "cluster-wide", "kind-readme"],
)
def test_platform_chart_lints_strictly(tool_env: dict[str, str], options: list[str]) -> None:
    run(tool_env, "helm", "lint", "--strict", str(PLATFORM), *options)


@pytest.mark.parametrize(
    "values", sorted(p.name for p in (MODEL_SERVICE / "examples").glob("*.yaml"))
)
def test_model_service_chart_lints_every_example(tool_env: dict[str, str], values: str) -> None:
    run(
        tool_env,
        "helm",
        "lint",
        "--strict",
        str(MODEL_SERVICE),
        "-f",
        str(MODEL_SERVICE / "examples" / values),
    )


DIGEST = "sha256:" + "ab" * 32


def test_platform_chart_takes_images_pull_secrets_and_scheduling_from_values(
    tool_env: dict[str, str],
) -> None:
    rendered = run(
        tool_env, "helm", "template", "x", str(PLATFORM), *EVERYTHING_ON,
        "--set", f"image.serving.digest={DIGEST}",
        "--set", "image.operator.repository=registry.example.com/ml/operator",
        "--set", "image.operator.tag=1.2.3",
        "--set", "redis.image.repository=registry.example.com/redis",
        "--set", "imagePullSecrets[0].name=regcred",
        "--set", "operator.nodeSelector.pool=ml",
        "--set", "minio.tolerations[0].key=dedicated",
        "--set", "redis.podAnnotations.checked=yes",
        "--set", "operator.podLabels.team=ml",
    )  # fmt: skip
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        if "template" in o["spec"]
        else o["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "Job", "Pod")
    }
    images = {name: [c["image"] for c in pod["containers"]] for name, pod in pods.items()}
    assert images["x-mlpatterns-operator"] == ["registry.example.com/ml/operator:1.2.3"]
    assert images["x-mlpatterns-minio-grant"] == [f"mlpatterns-serving@{DIGEST}"]
    assert images["x-mlpatterns-test"] == [f"mlpatterns-serving@{DIGEST}"]
    assert images["x-mlpatterns-redis"] == ["registry.example.com/redis:7.4-alpine"]
    for name, pod in pods.items():
        assert pod["imagePullSecrets"] == [{"name": "regcred"}], name
    assert pods["x-mlpatterns-operator"]["nodeSelector"] == {"pool": "ml"}
    assert pods["x-mlpatterns-minio"]["tolerations"] == [{"key": "dedicated"}]
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    redis_pod = deployments["x-mlpatterns-redis"]["spec"]["template"]["metadata"]
    assert redis_pod["annotations"] == {"checked": "yes"}
    operator_pod = deployments["x-mlpatterns-operator"]["spec"]["template"]["metadata"]
    assert operator_pod["labels"]["team"] == "ml"
    args = deployments["x-mlpatterns-operator"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--image") + 1] == f"mlpatterns-serving@{DIGEST}"
    assert args[args.index("--image-pull-secret") + 1] == "regcred"
    test_pod = next(o for o in objects if o["kind"] == "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_charts_name_their_home_sources_and_maintainers() -> None:
    for chart in (PLATFORM, MODEL_SERVICE):
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        assert meta["home"].startswith("https://")
        assert meta["sources"]
        assert meta["maintainers"][0]["name"]


def test_model_service_values_are_checked_by_the_crd_schema(tool_env: dict[str, str]) -> None:
    result = subprocess.run(
        ["helm", "template", "x", str(MODEL_SERVICE), "--set", "spec.pattern=streaming"],
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "/spec/pattern" in result.stderr


def test_every_rendered_object_passes_a_server_side_dry_run(
    tool_env: dict[str, str],
    namespace: str,
    istio_crds: list[str],
    prometheus_operator_crds: list[str],
    control_plane: ControlPlane,
) -> None:
    control_plane.kubectl("apply", "-f", str(PLATFORM / "crds"))
    chart = run(
        tool_env, "helm", "template", "mlpatterns", str(PLATFORM), "-n", namespace, *EVERYTHING_ON
    )
    kinds = {d["kind"] for d in yaml.safe_load_all(chart) if d}
    pipelines = {"Pipeline", "PipelineVersion"}  # KFP's CRDs are not available here
    assert pipelines <= kinds
    served = "\n---\n".join(
        yaml.safe_dump(d) for d in yaml.safe_load_all(chart) if d and d["kind"] not in pipelines
    )
    run(tool_env, "kubectl", "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=served)
    for pattern in sorted(p for p in repo_path("manifests", "patterns").iterdir() if p.is_dir()):
        for router in ("istio", "gateway"):
            rendered = run(
                tool_env,
                "mlpatterns",
                "render",
                "-f",
                str(pattern / "modelservice.yaml"),
                "-n",
                namespace,
                "--router",
                router,
                "--monitoring",
            )
            run(tool_env, "kubectl", "apply", "--dry-run=server", "-f", "-", input=rendered)
        run(tool_env, "kubectl", "apply", "--dry-run=server", "-n", namespace, "-k", str(pattern))
    for values in sorted((MODEL_SERVICE / "examples").glob("*.yaml")):
        service = run(
            tool_env,
            "helm",
            "template",
            "x",
            str(MODEL_SERVICE),
            "-n",
            namespace,
            "-f",
            str(values),
        )
        run(tool_env, "kubectl", "apply", "--dry-run=server", "-f", "-", input=service)
    # the Kustomize install for real (its namespace must exist for the rest)
    run(tool_env, "kubectl", "apply", "-k", str(repo_path("manifests", "overlays", "kind")))
    try:
        control_plane.kubectl(
            "rollout",
            "status",
            "deployment/mlpatterns-operator",
            "-n",
            "mlpatterns",
            "--timeout=60s",
        )
    finally:
        control_plane.kubectl("delete", "namespace", "mlpatterns", "--wait=false")


def objects_of(control_plane: ControlPlane, namespace: str, release: str) -> list[str]:
    kinds = "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings,pvc"
    found = control_plane.kubectl(
        "get", kinds, "-n", namespace, "-l", f"app.kubernetes.io/instance={release}", "-o", "name"
    ).split()
    cluster = control_plane.kubectl(
        "get",
        "clusterroles,clusterrolebindings",
        "-l",
        f"app.kubernetes.io/instance={release}",
        "-o",
        "name",
    ).split()
    return sorted(found + cluster)


def test_install_upgrade_rollback_uninstall_leave_no_orphans(
    tool_env: dict[str, str], namespace: str, control_plane: ControlPlane
) -> None:
    release = "platform"
    helm = ["helm", "-n", namespace]
    run(tool_env, *helm, "install", release, str(PLATFORM), "--wait", "--timeout", "120s")
    first = objects_of(control_plane, namespace, release)
    assert "deployment.apps/platform-mlpatterns-operator" in first
    assert "role.rbac.authorization.k8s.io/platform-mlpatterns-operator" in first
    run(
        tool_env,
        *helm,
        "upgrade",
        release,
        str(PLATFORM),
        "--wait",
        "--timeout",
        "120s",
        *("--set", "minio.enabled=true", "--set", "redis.enabled=true"),
        *("--set", "minio.storageSize=0", "--set", "redis.storageSize=0"),  # no provisioner here
        *("--set", "operator.scope=cluster"),
    )
    upgraded = objects_of(control_plane, namespace, release)
    assert "deployment.apps/platform-mlpatterns-minio" in upgraded
    for secret in ("minio", "storage", "storage-training", "redis"):
        assert f"secret/platform-mlpatterns-{secret}" in upgraded

    def secrets() -> list[str]:
        return [
            control_plane.kubectl(
                "get",
                "secret",
                f"platform-mlpatterns-{name}",
                *("-n", namespace, "-o", f"jsonpath={{.data.{key}}}"),
            )
            for name, key in (
                ("minio", "rootPassword"),
                ("storage", "MLPATTERNS_S3_SECRET_KEY"),
                ("redis", "redis-password"),
            )
        ]

    passwords = secrets()
    assert all(passwords)
    assert len(set(passwords)) == 3
    run(tool_env, *helm, "upgrade", release, str(PLATFORM), "--reuse-values", "--wait")
    assert secrets() == passwords  # random passwords survive an upgrade
    run(tool_env, *helm, "rollback", release, "1", "--wait")
    assert objects_of(control_plane, namespace, release) == first
    run(tool_env, *helm, "uninstall", release, "--wait")
    assert objects_of(control_plane, namespace, release) == []
    notes = run(tool_env, *helm, "install", release, str(PLATFORM), "--dry-run=server")
    assert "kubectl mlpatterns traffic" in notes


def test_kustomize_base_grants_what_the_chart_grants(tool_env: dict[str, str]) -> None:
    chart = run(tool_env, "helm", "template", "mlpatterns", str(PLATFORM))
    role = next(d for d in yaml.safe_load_all(chart) if d and d["kind"] == "Role")
    base = run(tool_env, "kubectl", "kustomize", str(repo_path("manifests", "base")))
    base_role = next(d for d in yaml.safe_load_all(base) if d and d["kind"] == "Role")
    assert base_role["rules"] == role["rules"]
    for folder in ("base", "overlays/kind", "overlays/batch-object-store", "pipelines"):
        run(tool_env, "kubectl", "kustomize", str(repo_path("manifests", *folder.split("/"))))


def test_chart_pods_run_with_least_privilege(tool_env: dict[str, str]) -> None:
    chart = run(tool_env, "helm", "template", "mlpatterns", str(PLATFORM), *EVERYTHING_ON)
    objects = [d for d in yaml.safe_load_all(chart) if d]
    deployments = [d for d in objects if d["kind"] == "Deployment"]
    assert len(deployments) == 3  # operator, MinIO, Redis
    [training] = [d for d in objects if d["kind"] == "CronJob"]
    templates = [d["spec"]["template"] for d in deployments]
    templates.append(training["spec"]["jobTemplate"]["spec"]["template"])
    for owner, template in zip([*deployments, training], templates, strict=True):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance"):
            assert key in owner["metadata"]["labels"]


def test_the_models_examples_match_the_pattern_manifests() -> None:
    for values in (MODEL_SERVICE / "examples").glob("*.yaml"):
        manifest = repo_path("manifests", "patterns", values.stem, "modelservice.yaml")
        assert (
            yaml.safe_load(manifest.read_text())["metadata"]["name"]
            == yaml.safe_load(values.read_text())["name"]
        )


def test_kubectl_plugin_is_on_path(tool_env: dict[str, str]) -> None:
    plugins = run(tool_env, "kubectl", "plugin", "list")
    assert "kubectl-mlpatterns" in plugins
    assert Path(plugins.split("kubectl-mlpatterns")[0].split()[-1] + "kubectl-mlpatterns").name


@pytest.mark.attack
def test_the_platform_is_closed_by_default(tool_env: dict[str, str]) -> None:
    """NetworkPolicies deny what no pattern needs; Redis has a password, an
    append-only file and noeviction; no credential is ever in a pod's arguments."""
    chart = run(tool_env, "helm", "template", "p", str(PLATFORM), *EVERYTHING_ON)
    documents = [d for d in yaml.safe_load_all(chart) if d]
    policies = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "NetworkPolicy"}
    assert policies["p-mlpatterns-default-deny"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "mlpatterns"}},
        "policyTypes": ["Ingress"],
    }
    [queue_from] = policies["p-mlpatterns-queue"]["ingress"][0]["from"]
    expressions = queue_from["podSelector"]["matchExpressions"]
    allowed = {"key": "app.kubernetes.io/component", "operator": "In"}
    assert {**allowed, "values": ["async-api", "worker"]} in expressions
    assert "p-mlpatterns-metrics" not in policies  # no scraper named, none let in
    [sidecars] = policies["p-mlpatterns-operator-reads-sidecars"]["ingress"]
    assert sidecars["ports"] == [{"port": 15090, "protocol": "TCP"}]
    assert sidecars["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "operator"
    )
    secrets = [d for d in documents if d["kind"] == "Secret"]
    values = {
        value
        for secret in secrets
        for key, value in secret["stringData"].items()
        if key in ("rootPassword", "MLPATTERNS_S3_SECRET_KEY", "redis-password")
    }
    assert len(values) == 4  # MinIO root, serving, training, Redis
    pods = [d["spec"]["template"]["spec"] for d in documents if d["kind"] in ("Deployment", "Job")]
    for pod in pods:
        for container in pod["containers"]:
            words = " ".join(container.get("command", []) + container.get("args", []))
            assert not any(value in words for value in values), container["name"]
    [redis] = [p["containers"][0] for p in pods if p["containers"][0]["name"] == "redis"]
    command = redis["args"][0]
    for setting in ("--appendonly yes", "--maxmemory-policy noeviction", "--maxmemory 192mb"):
        assert setting in command
    assert redis["env"][0]["valueFrom"]["secretKeyRef"]["key"] == "redis-password"
    closed = run(
        tool_env, "helm", "template", "p", str(PLATFORM), "--set", "networkPolicy.enabled=false"
    )
    assert "NetworkPolicy" not in closed


def test_compiled_pipelines_take_the_registry_settings_from_the_charts_training_secret(
    tool_env: dict[str, str],
) -> None:
    """A run on KFP registers into the chart's MinIO: the steps that use the registry
    get every MLPATTERNS_S3_* key of the Secret the chart writes for training."""
    rendered = run(tool_env, "helm", "template", "mlpatterns", str(PLATFORM), *EVERYTHING_ON)
    secrets = {
        o["metadata"]["name"]: o
        for o in yaml.safe_load_all(rendered)
        if o and o["kind"] == "Secret"
    }
    for compiled in sorted(repo_path("pipelines", "compiled").glob("*.yaml")):
        documents = list(yaml.safe_load_all(compiled.read_text()))
        platform = next(d for d in documents if "platforms" in d)
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        with_secret = {
            name: spec["secretAsEnv"] for name, spec in executors.items() if "secretAsEnv" in spec
        }
        assert {"exec-load", "exec-register"} <= set(with_secret), compiled.name
        for name, entries in with_secret.items():
            (entry,) = entries
            secret = secrets[entry["secretName"]]
            keys = {k["secretKey"] for k in entry["keyToEnv"]}
            assert keys <= set(secret.get("stringData") or secret.get("data") or {}), name
            assert {k["envVar"] for k in entry["keyToEnv"]} == keys
