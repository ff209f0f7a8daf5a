"""The real node's configuration, as pure functions: containerd's, the CNI bridge's,
kubelet's and kube-proxy's, each keeping its state in the node's folder and listening
on loopback or the node's address only."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.netguard import NodeNetwork

__all__ = [
    "CGROUP_ROOT",
    "CLUSTER_DOMAIN",
    "CNI_BIN",
    "NODE_NAME",
    "SOCKETS",
    "cni_config",
    "containerd_config",
    "containerd_socket",
    "kube_proxy_config",
    "kubelet_config",
]

NODE_NAME = "mlp-node"
CNI_BIN = Path("/usr/lib/cni")
CGROUP_ROOT = "mlpatterns-node"
# containerd's own sockets: a socket's path has at most 107 bytes, a test folder's more
SOCKETS = Path("/run/mlpatterns-node")
CLUSTER_DOMAIN = "cluster.local"


def containerd_config(folder: Path, socket: Path, pause_image: str) -> str:
    """containerd's config: everything it keeps inside `folder` but its `socket`, nothing
    listening on TCP."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{folder}/root"
state = "{folder}/state"
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{folder}/opt"
[{cri}]
  sandbox_image = "{pause_image}"
  # this machine forbids lowering oom_score_adj: without this every sandbox fails
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{folder}/cni"
"""


def containerd_socket(node_folder: Path) -> Path:
    """The socket of the containerd of the node whose folder this is."""
    key = hashlib.sha256(str(node_folder.resolve()).encode()).hexdigest()[:12]
    return SOCKETS / key / "containerd.sock"


def cni_config(net: NodeNetwork, ipam_folder: Path) -> dict[str, object]:
    """The bridge network: pod addresses from the node subnet, never masqueraded."""
    return {
        "cniVersion": "1.0.0",
        "name": "mlpatterns",
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": net.node_subnet, "gateway": net.node_ip}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_folder),
                },
            }
        ],
    }


def kubelet_config(
    folder: Path, ca_file: Path, net: NodeNetwork, ports: dict[str, int]
) -> dict[str, object]:
    """kubelet's config: cgroupfs under its own root, serving on the node address only."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "address": net.node_ip,
        "port": ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports["kubelet-healthz"],
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [net.dns_ip],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(folder / "resolv.conf"),
        "containerRuntimeEndpoint": f"unix://{containerd_socket(folder)}",
        "podLogsDir": str(folder / "pod-logs"),
        "podCIDR": net.node_subnet,
        "serializeImagePulls": False,
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "protectKernelDefaults": False,
        "registerNode": True,
    }


def kube_proxy_config(folder: Path, net: NodeNetwork, ports: dict[str, int]) -> dict[str, object]:
    """kube-proxy's config: iptables mode, node ports on the node address, conntrack as is."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(folder / "kube-proxy.kubeconfig")},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": net.pod_range,
        "bindAddress": net.node_ip,
        "healthzBindAddress": f"127.0.0.1:{ports['proxy-healthz']}",
        "metricsBindAddress": f"127.0.0.1:{ports['proxy-metrics']}",
        "nodePortAddresses": [f"{net.node_ip}/32"],
        # zeros leave the machine's conntrack settings as they are
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
    }
