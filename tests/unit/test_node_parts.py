"""The real node's pure parts: the guard's rules, the images' requirements and chart
values, the node's configs, the cluster DNS objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.addons import corefile, local_path_objects
from tests.support.images import Image, chart_values, for_image_pythons
from tests.support.netguard import NodeNetwork, guard_rules
from tests.support.node_config import (
    containerd_config,
    containerd_socket,
    kube_proxy_config,
    kubelet_config,
)

pytestmark = pytest.mark.unit


def test_the_guard_fences_both_ranges_in_both_directions() -> None:
    net = NodeNetwork()
    rules = {chain: [" ".join(rule) for rule in body] for chain, body in guard_rules(net).items()}
    for chain in ("MLP-GUARD-IN", "MLP-GUARD-OUT"):
        way = "-i" if chain.endswith("IN") else "-o"
        assert rules[chain][:2] == [f"{way} lo -j RETURN", f"{way} mlp0 -j RETURN"]
        assert {
            "-d 10.244.0.0/16 -j DROP",
            "-d 10.96.0.0/16 -j DROP",
            "-s 10.244.0.0/16 -j DROP",
        } <= set(rules[chain])
    assert rules["MLP-GUARD-FWD"] == [
        "-i mlp0 -o mlp0 -j RETURN",
        "-i mlp0 -j DROP",
        "-o mlp0 -j DROP",
    ]
    assert rules["MLP-GUARD-HOST"] == ["-d 10.244.0.1/32 -i mlp0 -j RETURN", "-i mlp0 -j DROP"]


REQUIREMENTS = """\
# exported by uv
async-timeout==5.0.1 ; python_full_version < '3.11.3' \\
    --hash=sha256:aa
colorama==0.4.6 ; sys_platform == 'win32' \\
    --hash=sha256:bb
numpy==2.4.6 ; python_full_version < '3.12' \\
    --hash=sha256:cc
numpy==2.5.5 ; python_full_version >= '3.12' \\
    --hash=sha256:dd
pyyaml==6.0.3 \\
    --hash=sha256:ee
"""


def test_requirements_keep_what_the_host_or_bookworm_s_python_installs() -> None:
    kept = for_image_pythons(REQUIREMENTS).splitlines()
    assert kept == [
        "async-timeout==5.0.1 --hash=sha256:aa",  # bookworm's 3.11.2 needs it, the host not
        "numpy==2.4.6 --hash=sha256:cc",
        "pyyaml==6.0.3 --hash=sha256:ee",
    ]


def test_chart_values_name_the_built_images() -> None:
    images = [
        Image("serving", "mlpatterns-serving:0.1.0", "a"),
        Image("operator", "mlpatterns-operator:0.1.0", "b"),
        Image("redis", "mlpatterns-redis:1234", "c"),
        Image("minio", "mlpatterns-minio:5678", "d"),
        Image("pause", "mlpatterns-pause:9", "e"),
    ]
    assert chart_values(images) == {
        "image": {
            "serving": {"repository": "mlpatterns-serving", "tag": "0.1.0"},
            "operator": {"repository": "mlpatterns-operator", "tag": "0.1.0"},
        },
        "redis": {"image": {"repository": "mlpatterns-redis", "tag": "1234"}},
        "minio": {"image": {"repository": "mlpatterns-minio", "tag": "5678"}},
    }


def test_containerd_keeps_to_its_folder_and_a_short_socket(tmp_path: Path) -> None:
    folder = tmp_path / ("a-long-test-folder-name-" * 4) / "node"
    socket = containerd_socket(folder)
    assert len(str(socket) + ".ttrpc") < 108  # a unix socket's path limit
    assert socket == containerd_socket(folder / ".." / "node")
    config = containerd_config(folder / "containerd", socket, "docker.io/library/pause:1")
    assert f'root = "{folder}/containerd/root"' in config
    assert "restrict_oom_score_adj = true" in config
    assert 'stream_server_address = "127.0.0.1"' in config
    assert '[metrics]\n  address = ""' in config


def test_cluster_dns_serves_the_cluster_zones_and_forwards_nothing() -> None:
    text = corefile("cluster.local")
    assert text.startswith("cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {")
    assert "forward" not in text


def test_kubelet_and_kube_proxy_listen_on_loopback_or_the_node_address(tmp_path: Path) -> None:
    net = NodeNetwork()
    ports = {"kubelet": 1, "kubelet-healthz": 2, "proxy-healthz": 3, "proxy-metrics": 4}
    kubelet = kubelet_config(tmp_path, tmp_path / "ca.crt", net, ports)
    assert (kubelet["address"], kubelet["healthzBindAddress"], kubelet["readOnlyPort"]) == (
        "10.244.0.1",
        "127.0.0.1",
        0,
    )
    assert kubelet["authentication"] == {
        "anonymous": {"enabled": False},
        "webhook": {"enabled": True},
        "x509": {"clientCAFile": str(tmp_path / "ca.crt")},
    }
    proxy = kube_proxy_config(tmp_path, net, ports)
    assert proxy["healthzBindAddress"] == "127.0.0.1:3"
    assert proxy["metricsBindAddress"] == "127.0.0.1:4"
    assert proxy["nodePortAddresses"] == ["10.244.0.1/32"]
    assert proxy["conntrack"] == {  # the machine's conntrack settings stay as they are
        "maxPerCore": 0,
        "min": 0,
        "tcpEstablishedTimeout": "0s",
        "tcpCloseWaitTimeout": "0s",
    }


def test_claims_get_folders_of_the_node_through_the_default_storage_class(tmp_path: Path) -> None:
    objects = {o["kind"]: o for o in local_path_objects("p:1", "h:1", tmp_path / "volumes")}
    storage_class = objects["StorageClass"]
    assert storage_class["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }
    assert (storage_class["provisioner"], storage_class["volumeBindingMode"]) == (
        "rancher.io/local-path",
        "WaitForFirstConsumer",
    )
    config = objects["ConfigMap"]["data"]
    assert str(tmp_path / "volumes") in config["config.json"]
    assert 'mkdir -m 0777 -p "$VOL_DIR"' in config["setup"]
    assert "h:1" in config["helperPod.yaml"]
