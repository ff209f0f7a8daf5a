"""What a test node runs beside the platform, as kind does: cluster DNS (CoreDNS,
answering for the cluster's zones only) and a PersistentVolume provisioner (Rancher's
local-path-provisioner behind the default StorageClass `standard`, its volumes in a
folder of the node's). Plain functions returning the objects to apply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.support.netguard import NodeNetwork
from tests.support.node_config import CLUSTER_DOMAIN

__all__ = ["ADDON_DEPLOYMENTS", "coredns_objects", "corefile", "local_path_objects"]

ADDON_DEPLOYMENTS = (
    ("kube-system", "deployment/coredns"),
    ("local-path-storage", "deployment/local-path-provisioner"),
)
PROVISIONER = "rancher.io/local-path"


def corefile(domain: str) -> str:
    """Answers for the cluster's own zones only: no `forward`, so nothing goes upstream."""
    return (
        f"{domain}:53 in-addr.arpa:53 ip6.arpa:53 {{\n"
        "    errors\n"
        "    health :8080\n"
        "    ready :8181\n"
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{\n"
        "        pods insecure\n"
        "        ttl 5\n"
        "    }\n"
        "    cache 5\n"
        "    loop\n"
        "}\n"
    )


def coredns_objects(image: str, net: NodeNetwork) -> list[dict[str, object]]:
    """Cluster DNS as kind runs it: a Deployment behind the kube-dns Service."""
    labels = {"k8s-app": "kube-dns"}
    meta = {"name": "coredns", "namespace": "kube-system"}
    container = {
        "name": "coredns",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
        ],
        # a busy two-core machine answers a probe late now and then: tolerate it
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": 8181},
            "periodSeconds": 2,
            "timeoutSeconds": 5,
            "failureThreshold": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": 8080},
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", **meta}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {"Corefile": corefile(CLUSTER_DOMAIN)},
        },
        _deployment(
            {**meta, "labels": labels},
            labels,
            {
                "serviceAccountName": "coredns",
                "dnsPolicy": "Default",
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                    # port 53 without any capability
                    "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
                },
                "containers": [container],
                "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
            },
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": net.dns_ip,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
    ]


def _deployment(
    metadata: dict[str, Any], labels: dict[str, str], pod: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def local_path_objects(image: str, helper_image: str, volumes: Path) -> list[dict[str, Any]]:
    """The provisioner, its rights, its config and the default StorageClass `standard`.

    A claim gets a folder under `volumes` (made 0777 by a helper pod, as kind does, so
    any pod user can write it), bound to the node; deleting the claim removes it.
    """
    namespace = "local-path-storage"
    account = {"kind": "ServiceAccount", "name": "local-path-provisioner", "namespace": namespace}
    labels = {"app": "local-path-provisioner"}
    rbac = "rbac.authorization.k8s.io"
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "containers": [
                {"name": "helper-pod", "image": helper_image, "imagePullPolicy": "IfNotPresent"}
            ],
        },
    }
    config = {
        "nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(volumes)]}]
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account["name"], "namespace": namespace},
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "local-path-provisioner"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumes"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                },
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                {
                    "apiGroups": ["storage.k8s.io"],
                    "resources": ["storageclasses"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "local-path-provisioner"},
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "local-path-provisioner"},
            "subjects": [account],
        },
        {  # its helper pods, in its own namespace only
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": {"name": "local-path-provisioner", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                }
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "local-path-provisioner", "namespace": namespace},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "local-path-provisioner"},
            "subjects": [account],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "local-path-config", "namespace": namespace},
            "data": {
                "config.json": json.dumps(config),
                "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
                "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
                "helperPod.yaml": yaml.safe_dump(helper_pod),
            },
        },
        _deployment(
            {"name": "local-path-provisioner", "namespace": namespace},
            labels,
            {
                "serviceAccountName": account["name"],
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "provisioner",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": [
                            "start",
                            "--config=/etc/config/config.json",
                            f"--provisioner-name={PROVISIONER}",
                            f"--service-account-name={account['name']}",
                            "--configmap-name=local-path-config",
                        ],
                        "env": [
                            {
                                "name": "POD_NAMESPACE",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                            },
                            {"name": "CONFIG_MOUNT_PATH", "value": "/etc/config/"},
                        ],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/config/"}],
                    }
                ],
                "volumes": [{"name": "config", "configMap": {"name": "local-path-config"}}],
            },
        ),
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "standard",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        },
    ]
