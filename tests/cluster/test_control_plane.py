"""The test control plane behaves like a real cluster: workloads, CRDs, RBAC, apply."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import repo_path
from tests.support.controlplane import ControlPlane, ControlPlaneError

pytestmark = pytest.mark.cluster


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {timeout:.0f}s")


def test_nodes_are_ready_fake_kwok_nodes(control_plane: ControlPlane) -> None:
    nodes = json.loads(control_plane.kubectl("get", "nodes", "-o", "json"))["items"]
    assert len(nodes) >= 2
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]


def test_helm_install_gives_ready_pods_and_endpoints(
    control_plane: ControlPlane, tool_env: dict[str, str], namespace: str
) -> None:
    chart = repo_path("tests/cluster/charts/web")
    result = run(
        ["helm", "install", "demo", str(chart), "-n", namespace, "--wait", "--timeout=90s"],
        tool_env,
    )
    assert result.returncode == 0, result.stderr
    deployment = json.loads(
        control_plane.kubectl("get", "deployment", "demo-web", "-n", namespace, "-o", "json")
    )
    assert deployment["status"]["readyReplicas"] == 2

    pods = json.loads(
        control_plane.kubectl(
            "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/instance=demo", "-o", "json"
        )
    )["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running", "Running"]
    pod_ips = {p["status"]["podIP"] for p in pods}
    assert len(pod_ips) == 2

    def endpoints() -> set[str]:
        slices = json.loads(
            control_plane.kubectl(
                "get",
                "endpointslices",
                "-n",
                namespace,
                "-l",
                "kubernetes.io/service-name=demo-web",
                "-o",
                "json",
            )
        )["items"]
        return {
            address
            for piece in slices
            for endpoint in piece.get("endpoints") or []
            if endpoint["conditions"].get("ready")
            for address in endpoint["addresses"]
        }

    wait_for("both pod IPs in the Service's EndpointSlice", lambda: endpoints() == pod_ips)

    result = run(["helm", "uninstall", "demo", "-n", namespace, "--wait"], tool_env)
    assert result.returncode == 0, result.stderr
    left = control_plane.kubectl("get", "deployment,service", "-n", namespace, "-o", "name")
    assert left.strip() == ""


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.mlpatterns.io}
spec:
  group: test.mlpatterns.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: integer, minimum: 1, maximum: 10}
                color: {type: string, enum: [red, blue]}
"""


def widget(size: object, color: str = "red") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "test.mlpatterns.io/v1",
            "kind": "Widget",
            "metadata": {"name": f"w-{color}"},
            "spec": {"size": size, "color": color},
        }
    )


def test_crd_schema_is_enforced(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-f", "-", input=CRD)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.test.mlpatterns.io", "--timeout=30s"
    )
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=widget(3))
    with pytest.raises(ControlPlaneError) as rejected:
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=widget(42, "blue"))
    assert "spec.size: Invalid value: 42: spec.size in body should be less than or equal to 10" in (
        str(rejected.value)
    )
    with pytest.raises(ControlPlaneError, match=r'spec.color: Unsupported value: "green"'):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=widget(2, "green"))


ROLE = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-reads-pods}
subjects: [{kind: ServiceAccount, name: reader}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
"""


def test_rbac_is_enforced_for_a_service_account_token(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=ROLE)
    account = f"system:serviceaccount:{namespace}:reader"
    can = control_plane.kubectl("auth", "can-i", "list", "pods", "-n", namespace, "--as", account)
    assert can.strip() == "yes"
    with pytest.raises(ControlPlaneError):  # can-i exits 1 on "no"
        control_plane.kubectl("auth", "can-i", "get", "secrets", "-n", namespace, "--as", account)

    # The account's own token, as a pod would use it: allowed reads work, the rest is denied.
    token = control_plane.kubectl("create", "token", "reader", "-n", namespace).strip()
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "reader", "reader", {"token": token})
    base = [str(control_plane.bin / "kubectl"), f"--kubeconfig={kubeconfig}", "-n", namespace]
    allowed = subprocess.run([*base, "get", "pods"], capture_output=True, text=True, check=False)
    assert allowed.returncode == 0, allowed.stderr
    denied = subprocess.run([*base, "get", "secrets"], capture_output=True, text=True, check=False)
    assert denied.returncode != 0
    assert 'cannot list resource "secrets"' in denied.stderr


CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: blue}
"""


def test_server_side_apply_and_patch(control_plane: ControlPlane, namespace: str) -> None:
    applied = control_plane.kubectl(
        "apply",
        "--server-side",
        "--field-manager=mlpatterns-test",
        "-n",
        namespace,
        "-f",
        "-",
        input=CONFIGMAP,
    )
    assert "serverside-applied" in applied
    configmap = json.loads(
        control_plane.kubectl(
            "get", "configmap", "settings", "-n", namespace, "-o", "json", "--show-managed-fields"
        )
    )
    managers = {entry["manager"] for entry in configmap["metadata"]["managedFields"]}
    assert "mlpatterns-test" in managers

    control_plane.kubectl(
        "patch",
        "configmap",
        "settings",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"data": {"mode": "green"}}',
    )
    mode = control_plane.kubectl(
        "get", "configmap", "settings", "-n", namespace, "-o", "jsonpath={.data.mode}"
    )
    assert mode == "green"

    # A second manager changing the same field conflicts, as server-side apply promises.
    with pytest.raises(ControlPlaneError, match="conflict"):
        control_plane.kubectl(
            "apply",
            "--server-side",
            "--field-manager=someone-else",
            "-n",
            namespace,
            "-f",
            "-",
            input=CONFIGMAP,
        )
