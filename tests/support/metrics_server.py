"""Resource metrics on the real node, as a cluster with HorizontalPodAutoscalers has
them: metrics-server (built by `hack/tools` from sigs.k8s.io/metrics-server) in a pod,
reading every kubelet's resource metrics, behind the APIService
v1beta1.metrics.k8s.io that the API server's aggregation layer proxies to. Plain
functions returning the objects to apply, and one that applies them."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.controlplane import ControlPlaneError
from tests.support.images import build, import_into_containerd
from tests.support.node_config import NODE_NAME
from tests.support.processes import wait_until
from tests.support.testcluster import RealCluster

__all__ = ["install_metrics_server", "metrics_server_objects"]

NAMESPACE = "kube-system"
NAME = "metrics-server"
RBAC = "rbac.authorization.k8s.io/v1"


def _binding(kind: str, name: str, role_kind: str, role: str) -> dict[str, Any]:
    metadata = {"name": name} | ({"namespace": NAMESPACE} if kind == "RoleBinding" else {})
    return {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }


def metrics_server_objects(image: str) -> list[dict[str, Any]]:
    """Its account and least rights (read nodes' metrics and pods; delegate authn and
    authz to the API server), its Deployment and Service, and the APIService."""
    labels = {"k8s-app": NAME}
    container = {
        "name": NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "--cert-dir=/tmp",
            "--secure-port=10250",
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port",
            "--kubelet-insecure-tls",  # the test kubelet serves a certificate of its own
            "--metric-resolution=15s",
            # the real node only: the kwok nodes' addresses answer nothing
            f"--node-selector=kubernetes.io/hostname={NODE_NAME}",
        ],
        "ports": [{"name": "https", "containerPort": 10250, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # an emptyDir
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": NAME, "namespace": NAMESPACE}},
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": f"system:{NAME}"},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"],
                 "verbs": ["get", "list", "watch"]},
            ],
        },
        _binding("ClusterRoleBinding", f"system:{NAME}", "ClusterRole", f"system:{NAME}"),
        _binding("ClusterRoleBinding", f"{NAME}:system:auth-delegator", "ClusterRole",
                 "system:auth-delegator"),
        _binding("RoleBinding", f"{NAME}-auth-reader", "Role",
                 "extension-apiserver-authentication-reader"),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": NAME,
                        "priorityClassName": "system-cluster-critical",
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {"selector": labels,
                     "ports": [{"name": "https", "port": 443, "targetPort": "https"}]},
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": labels},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "service": {"name": NAME, "namespace": NAMESPACE},
                "insecureSkipTLSVerify": True,  # its certificate is self-signed at start
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]  # fmt: skip


def install_metrics_server(cluster: RealCluster) -> None:
    """metrics-server on `cluster`'s node, until the API serves the node's metrics."""
    [image] = build(["metrics-server"])
    import_into_containerd(cluster.node.containerd_socket, [image])
    objects = metrics_server_objects(image.reference)
    cluster.plane.kubectl(
        "apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(o) for o in objects)
    )
    cluster.plane.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{NAME}",
                          "--timeout=120s")  # fmt: skip

    def serves_metrics() -> bool:
        try:
            nodes = cluster.plane.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes")
        except ControlPlaneError:  # not yet: the APIService is still unavailable
            return False
        return '"cpu"' in nodes

    wait_until("the node's resource metrics", serves_metrics, 120)
