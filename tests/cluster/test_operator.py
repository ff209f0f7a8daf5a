"""The platform chart installed with helm, and the operator, running as a local
process with the chart's ServiceAccount credentials, reconciling every pattern
example under manifests/patterns on the real control plane (kwok runs the pods)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import repo_path
from tests.support.controlplane import ControlPlane, ControlPlaneError
from tests.support.operator import (
    ACCOUNT,
    Operator,
    condition,
    get_json,
    install_platform,
    start_operator,
    wait_for,
)

pytestmark = pytest.mark.cluster
PATTERNS = sorted(p.name for p in repo_path("manifests", "patterns").iterdir() if p.is_dir())
# what the chart's values operator.allowedImageRegistries and allowedSecrets pass
ADMISSION = ("--allow-registry", "registry.local", "--allow-secret", "redis-credentials")


@dataclass
class Platform:
    control_plane: ControlPlane
    namespace: str
    kubeconfig: Path
    operator: Operator
    folder: Path
    restarts: int = 0

    def get(self, *args: str) -> dict[str, Any]:
        return get_json(self.control_plane, *args, "-n", self.namespace)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.control_plane.kubectl(*args, "-n", self.namespace, input=input)

    def ready(self, name: str) -> bool:
        found = self.get("modelservice", name)
        return condition(found, "Ready").get("status") == "True" and (
            found["status"].get("observedGeneration") == found["metadata"]["generation"]
        )

    def restart_operator(self, *, kill: bool = False) -> None:
        self.operator.kill() if kill else self.operator.stop()
        self.restarts += 1
        log = self.folder / f"operator-{self.restarts}.log"
        self.operator = start_operator(self.kubeconfig, self.namespace, log, *ADMISSION)


@pytest.fixture(scope="module")
def platform(
    control_plane: ControlPlane,
    tool_env: dict[str, str],
    istio_crds: list[str],
    prometheus_operator_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("platform")
    namespace = "mlp-operator"
    kubeconfig, operator = install_platform(control_plane, tool_env, namespace, folder, *ADMISSION)
    platform = Platform(control_plane, namespace, kubeconfig, operator, folder)
    yield platform
    platform.operator.stop()
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


def service_name(pattern: str) -> str:
    manifest = repo_path("manifests", "patterns", pattern, "modelservice.yaml")
    return str(yaml.safe_load(manifest.read_text())["metadata"]["name"])


def test_every_pattern_reconciles(platform: Platform) -> None:
    for pattern in PATTERNS:
        platform.kubectl("apply", "-k", str(repo_path("manifests", "patterns", pattern)))
    for pattern in PATTERNS:
        name = service_name(pattern)
        wait_for(f"{name} Ready", lambda n=name: platform.ready(n), 90, platform.operator)  # type: ignore[misc]
    deployments = platform.get("deployments")["items"]
    assert deployments
    for item in deployments:
        status = item.get("status", {})
        assert status.get("readyReplicas") == item["spec"]["replicas"], item["metadata"]["name"]
    slices = platform.get("endpointslices")["items"]
    served = {
        s["metadata"]["labels"].get("kubernetes.io/service-name")
        for s in slices
        if s.get("endpoints")
    }
    services = {s["metadata"]["name"] for s in platform.get("services")["items"]}
    assert services - served == set(), "every Service has endpoints"
    assert platform.get("cronjob", "iris-batch")["spec"]["schedule"] == "0 * * * *"
    assert platform.get("cronjob", "iris-batch")["spec"]["concurrencyPolicy"] == "Forbid"
    rules = platform.get("destinationrule", "iris-shadow")["spec"]["subsets"]
    assert [s["labels"] for s in rules] == [{"version": "current"}, {"version": "candidate"}]
    shadow = platform.get("virtualservice", "iris-shadow")["spec"]["http"][-1]
    assert shadow["mirror"]["subset"] == "candidate"
    assert shadow["mirrorPercentage"] == {"value": 100}
    assert [r["weight"] for r in shadow["route"]] == [100]
    conditions = platform.get("virtualservice", "iris-conditions")["spec"]["http"]
    assert conditions[0]["match"] == [{"headers": {"x-mlpatterns-route": {"exact": "current"}}}]
    params = platform.get("virtualservice", "iris-params")["spec"]["http"][-1]
    assert [r["destination"]["subset"] for r in params["route"]] == ["current"]  # kill switch
    stages = platform.get("virtualservice", "iris-stages")["spec"]["http"]
    assert [r["name"] for r in stages] == ["follow-up", "default-mirrored", "default"]
    assert stages[1]["mirror"]["subset"] == "heavy"
    heavy = platform.get("deployment", "iris-stages-heavy")["spec"]["template"]["spec"]
    args = heavy["containers"][0]["args"]
    assert args[args.index("--job-ids") + 1] == "request"
    assert platform.get("deployment", "iris-stages-heavy-worker")["status"]["readyReplicas"] == 1
    graph = platform.get("virtualservice", "iris-sequence")["spec"]["http"]
    assert [r["name"] for r in graph] == ["gateway-first", "gateway-second", "default"]
    assert platform.get("deployment", "iris-sequence-gateway")["status"]["readyReplicas"] == 1
    featured = platform.get("deployment", "iris-features-v1")["spec"]["template"]["spec"]
    container = featured["containers"][0]
    assert container["args"][container["args"].index("--features") + 1] == "redis:features:iris:"
    assert "MLPATTERNS_REDIS_URL" in {e["name"] for e in container["env"]}
    owners = platform.get("deployment", "iris-ab-current")["metadata"]["ownerReferences"]
    assert owners[0]["kind"] == "ModelService"
    assert owners[0]["name"] == "iris-ab"
    monitors = {m["metadata"]["name"] for m in platform.get("servicemonitors")["items"]}
    assert {"iris-ab", "iris-ab-gateway", "iris-sync"} <= monitors
    listed = platform.kubectl("get", "modelservices")
    assert "current=90,candidate=10" in listed  # the printer columns


def weights_in_force(platform: Platform, name: str) -> dict[str, int]:
    return dict(platform.get("modelservice", name).get("status", {}).get("weights", {}))


def test_patch_and_plugin_switch_traffic(platform: Platform, tool_env: dict[str, str]) -> None:
    name = "iris-ab"
    platform.kubectl("apply", "-k", str(repo_path("manifests", "patterns", "online-ab")))
    wait_for("iris-ab", lambda: platform.ready(name), 90, platform.operator)
    split = [{"version": "current", "weight": 50}, {"version": "candidate", "weight": 50}]
    patch = json.dumps({"spec": {"traffic": {"split": split}}})
    platform.kubectl("patch", "modelservice", name, "--type", "merge", "-p", patch)
    wait_for(
        "50/50",
        lambda: weights_in_force(platform, name) == {"current": 50, "candidate": 50},
        60,
        platform.operator,
    )

    def virtual_service_weights() -> list[int]:
        default = platform.get("virtualservice", name)["spec"]["http"][-1]
        return [r["weight"] for r in default["route"]]

    wait_for(
        "VirtualService 50/50", lambda: virtual_service_weights() == [50, 50], 60, platform.operator
    )
    routes = platform.get("configmap", f"{name}-routes")["data"]["modelservice.yaml"]
    assert "weight: 50" in routes  # the gateway's table (sticky users) too
    # kubectl's global flags, as a user with several clusters passes them
    kubeconfig = tool_env["KUBECONFIG"]
    flags_only = {k: v for k, v in tool_env.items() if k != "KUBECONFIG"}
    current = yaml.safe_load(Path(kubeconfig).read_text())["current-context"]
    plugin = subprocess.run(
        [
            "kubectl-mlpatterns",
            "--kubeconfig",
            kubeconfig,
            "traffic",
            name,
            "--context",
            current,
            "-n",
            platform.namespace,
            "--split",
            "current=80,candidate=20",
        ],
        env=flags_only,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plugin.returncode == 0, plugin.stdout + plugin.stderr
    wait_for("80/20", lambda: virtual_service_weights() == [80, 20], 60, platform.operator)
    refused = subprocess.run(
        [
            "kubectl-mlpatterns",
            "traffic",
            name,
            "-n",
            platform.namespace,
            "--split",
            "current=80,candidate=80",
        ],
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "add up to 160" in refused.stdout
    assert weights_in_force(platform, name) == {"current": 80, "candidate": 20}
    missing = subprocess.run(
        ["kubectl-mlpatterns", "traffic", "nosuch", "-n", platform.namespace, "--split", "a=100"],
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1  # kubectl's status and words, unwrapped
    assert missing.stderr.startswith("Error from server (NotFound)"), missing.stderr
    assert '"nosuch" not found' in missing.stderr


def test_a_removed_version_leaves_with_its_objects(platform: Platform) -> None:
    name = "iris-shadow"
    platform.kubectl("apply", "-k", str(repo_path("manifests", "patterns", "shadow-ab")))
    wait_for(name, lambda: platform.ready(name), 90, platform.operator)
    assert platform.get("deployment", f"{name}-candidate")
    patch = (
        '[{"op":"remove","path":"/spec/traffic/shadow"},{"op":"remove","path":"/spec/versions/1"}]'
    )
    platform.kubectl("patch", "modelservice", name, "--type", "json", "-p", patch)

    def gone() -> bool:
        names = {d["metadata"]["name"] for d in platform.get("deployments")["items"]}
        services = {s["metadata"]["name"] for s in platform.get("services")["items"]}
        return f"{name}-candidate" not in names | services

    wait_for("the candidate's objects deleted", gone, 60, platform.operator)
    subsets = platform.get("destinationrule", name)["spec"]["subsets"]
    assert [s["name"] for s in subsets] == ["current"]


def test_invalid_model_services(platform: Platform) -> None:
    bad_schema = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "bad-schema"},
        "spec": {"versions": [{"name": "a", "model": {"uri": "models:/x@y"}, "replicas": -1}]},
    }
    with pytest.raises(ControlPlaneError) as rejected:
        platform.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad_schema))
    assert "spec.versions[0].replicas in body should be greater than or equal to 0" in str(
        rejected.value
    )
    bad_meaning = {
        **bad_schema,
        "metadata": {"name": "bad-weights"},
        "spec": {
            "versions": [
                {"name": "a", "model": {"uri": "models:/x@y"}},
                {"name": "b", "model": {"uri": "models:/x@z"}},
            ],
            "traffic": {"split": [{"version": "a", "weight": 60}, {"version": "b", "weight": 60}]},
        },
    }
    platform.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad_meaning))

    def degraded() -> bool:
        found = condition(platform.get("modelservice", "bad-weights"), "Degraded")
        return found.get("status") == "True"

    wait_for("Degraded", degraded, 60, platform.operator)
    message = condition(platform.get("modelservice", "bad-weights"), "Degraded")["message"]
    assert "weights add up to 120; they must add up to 100" in message
    events = platform.kubectl("get", "events", "--field-selector", "reason=InvalidSpec")
    assert "bad-weights" in events
    assert platform.operator.process.poll() is None  # no crash, no crash loop


def test_the_lints_findings_are_warning_events_on_the_model_service(platform: Platform) -> None:
    careless = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "careless"},
        "spec": {
            "versions": [{"name": "v1", "model": {"uri": "models:/iris@production"}}],
            "logging": {"predictions": False},
        },
    }
    platform.kubectl("apply", "-f", "-", input=yaml.safe_dump(careless))
    example = repo_path("manifests", "patterns", "online-ab", "modelservice.yaml")
    platform.kubectl("apply", "-f", str(example))

    def warnings(name: str) -> list[str]:
        found = platform.get(
            "events", "--field-selector", f"involvedObject.name={name},reason=AntiPattern"
        )
        return [event["message"] for event in found["items"]]

    def handled(name: str) -> bool:
        annotations = platform.get("modelservice", name)["metadata"].get("annotations", {})
        return any(key.endswith("last-handled-configuration") for key in annotations)

    wait_for("the careless service's warnings", lambda: len(warnings("careless")) >= 2, 60,
             platform.operator)  # fmt: skip
    wait_for("the example handled", lambda: handled("iris-ab"), 60, platform.operator)
    rules = sorted(message.split(":", 1)[0] for message in warnings("careless"))
    assert rules == ["no-logging", "nobody-knows"]
    assert any("fix: set spec.logging.predictions: true" in m for m in warnings("careless"))
    assert warnings("iris-ab") == []  # the project's examples are clean


@pytest.mark.attack
def test_images_and_secrets_outside_the_allow_lists_are_refused(platform: Platform) -> None:
    """Whoever can create a ModelService could run any image and read any Secret of
    the namespace through it; the operator refuses what its allow-lists lack."""
    intruder = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "intruder"},
        "spec": {
            "versions": [{"name": "a", "image": "registry.local.evil.io/miner:1"}],
            "storage": {"secretName": "db-root"},
        },
    }
    platform.kubectl("apply", "-f", "-", input=yaml.safe_dump(intruder))

    def refused() -> bool:
        found = condition(platform.get("modelservice", "intruder"), "Degraded")
        return found.get("reason") == "NotAllowed"

    wait_for("NotAllowed", refused, 60, platform.operator)
    message = condition(platform.get("modelservice", "intruder"), "Degraded")["message"]
    assert "registry.local.evil.io/miner:1" in message
    assert "Secret 'db-root'" in message
    events = platform.kubectl("get", "events", "--field-selector", "reason=NotAllowed")
    assert "intruder" in events
    deployments = platform.get("deployments", "-l", "mlpatterns.io/service=intruder")
    assert deployments["items"] == []  # nothing was created for it
    platform.kubectl("delete", "modelservice", "intruder")


def owned_versions(platform: Platform) -> dict[str, str]:
    found = {}
    for kind in ("deployments", "services", "configmaps", "virtualservices", "destinationrules"):
        for item in platform.get(kind, "-l", "app.kubernetes.io/managed-by=mlpatterns")["items"]:
            found[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return found


def settled_versions(platform: Platform, quiet: float = 3, limit: float = 60) -> dict[str, str]:
    """The owned objects' versions once none has changed for `quiet` seconds: status
    updates from Deployment events, and a convergence still writing, come to rest."""
    deadline = time.monotonic() + limit
    seen = owned_versions(platform)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = owned_versions(platform)
        if now == seen:
            return now
        seen = now
    raise AssertionError(f"the owned objects kept changing for {limit:.0f}s")


def test_restarts_converge_and_a_quiet_reconcile_writes_nothing(platform: Platform) -> None:
    manifest = yaml.safe_load(
        repo_path("manifests", "patterns", "online-ab", "modelservice.yaml").read_text()
    )
    manifest["metadata"]["name"] = "iris-restart"
    for pattern in ("synchronous", "online-ab"):
        platform.kubectl("apply", "-k", str(repo_path("manifests", "patterns", pattern)))
    platform.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    time.sleep(0.3)  # the operator is in the middle of it
    platform.restart_operator(kill=True)
    wait_for(
        "iris-restart Ready after a kill",
        lambda: platform.ready("iris-restart"),
        90,
        platform.operator,
    )
    for pattern in ("synchronous", "online-ab"):
        wait_for(pattern, lambda p=pattern: platform.ready(service_name(p)), 90, platform.operator)  # type: ignore[misc]
    before = settled_versions(platform)  # the killed operator's successor has converged
    platform.restart_operator()  # resume: every ModelService is reconciled again
    wait_for(
        "resumed",
        lambda: (
            "resum" in platform.operator.output().lower() or len(platform.operator.output()) > 0
        ),
        30,
        platform.operator,
    )
    time.sleep(5)
    assert owned_versions(platform) == before  # nothing was written


def test_the_operator_account_has_least_privilege(platform: Platform) -> None:
    account = f"system:serviceaccount:{platform.namespace}:{ACCOUNT}"

    def can(*args: str) -> bool:
        result = subprocess.run(
            ["kubectl", "auth", "can-i", *args, "--as", account],
            env={
                "KUBECONFIG": str(platform.control_plane.kubeconfig),
                "PATH": f"{platform.control_plane.bin}",
            },
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout.strip() == "yes"

    ns = ["-n", platform.namespace]
    assert can("patch", "deployments", *ns)
    assert can("patch", "modelservices/status", *ns)
    assert not can("get", "secrets", *ns)
    assert can("list", "pods", *ns)  # read only, for the Degraded condition's reason
    assert not can("delete", "pods", *ns)
    assert not can("get", "pods", "--subresource=log", *ns)
    assert not can("create", "deployments", "-n", "default")
    assert not can("get", "modelservices", "-n", "default")
