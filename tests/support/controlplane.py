"""A real Kubernetes control plane as plain processes, the way envtest runs one.

etcd, kube-apiserver (secure port on loopback, RBAC, ServiceAccount signing keys),
kube-controller-manager, kube-scheduler and kwok, which stands in for the kubelets
of fake nodes so that pods become Running and Ready and Services get endpoints.
Every port is a free port on 127.0.0.1; all state and every log live in one folder;
`stop` ends exactly the processes `start` recorded, by pid.
(`hack/test-cluster`, in tests/support/testcluster.py, starts and stops one.)
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.pki import CertificateAuthority, KeyPair, service_account_keys
from tests.support.processes import (
    NotReadyError,
    free_port,
    http_ok,
    running,
    spawn,
    terminate,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
STAGES = (  # kwok has no built-in behaviour: these stages make nodes and pods live
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


class ControlPlaneError(NotReadyError):
    """The control plane could not start; the message names the component and its log."""


def tools_bin() -> Path:
    """The folder `hack/tools` builds into (the same answer as `hack/tools path`)."""
    out = subprocess.run(
        ["bash", str(REPO / "hack/tools"), "path"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


@dataclass
class ControlPlane:
    """One control plane whose state and logs live in `folder`."""

    folder: Path
    bin: Path = field(default_factory=tools_bin)
    die_with_parent: bool = False  # for test fixtures: no process outlives the run
    # the API server's address: loopback, or a real node's address that its pods reach
    address: str = "127.0.0.1"
    # with a real node beside them, the kwok nodes take no workload that does not ask
    taint_fake_nodes: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    _ca: CertificateAuthority | None = field(default=None, repr=False)

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "admin.kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.folder / "cluster.json"

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.ports['apiserver']}"

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> None:
        for tool in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            if not (self.bin / tool).exists():
                raise ControlPlaneError(f"{self.bin / tool} is missing: run `hack/tools build`")
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in ("etcd", "peer", "apiserver", "scheduler")}
        pki = self._write_pki()
        try:
            self._start_etcd()
            self._start_apiserver(pki)
            self._start_controllers(pki)
            self._start_kwok()
            self._create_nodes()
            self.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
            wait_until("default ServiceAccount", self._has_default_service_account, 60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """End the recorded processes (TERM, then KILL) and remove the state folder."""
        for name, pid in reversed(list(self.pids.items())):
            terminate(name, pid)
        self.pids.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def save(self) -> None:
        state = {
            "ports": self.ports,
            "pids": self.pids,
            "address": self.address,
            "kubeconfig": str(self.kubeconfig),
        }
        self.state_file.write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, folder: Path) -> ControlPlane | None:
        state_file = folder / "cluster.json"
        if not state_file.exists():
            return None
        state = json.loads(state_file.read_text())
        return cls(
            folder=folder, ports=state["ports"], pids=state["pids"], address=state["address"]
        )

    def alive(self) -> bool:
        return bool(self.pids) and all(running(pid) for pid in self.pids.values())

    def healthy(self) -> bool:
        return self.alive() and self._api_ready()

    # ---- helpers for callers --------------------------------------------

    def kubectl(self, *args: str, input: str | None = None) -> str:
        """Run kubectl as the admin; raise with kubectl's message when it fails."""
        out = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def tool_environment(self) -> dict[str, str]:
        """Environment for helm and kubectl subprocesses: the tools on PATH, admin kubeconfig."""
        env = dict(os.environ)
        # the tools, and this environment's scripts (mlpatterns, kubectl-mlpatterns), as a
        # user who installed the package has them on PATH
        scripts = Path(sys.executable).parent
        env["PATH"] = os.pathsep.join([str(self.bin), str(scripts), env.get("PATH", "")])
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["HELM_CACHE_HOME"] = str(self.folder / "helm/cache")
        env["HELM_CONFIG_HOME"] = str(self.folder / "helm/config")
        env["HELM_DATA_HOME"] = str(self.folder / "helm/data")
        return env

    def write_kubeconfig(self, path: Path, user: str, credentials: dict[str, str]) -> Path:
        """A kubeconfig for this server with the given user credentials."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "mlpatterns-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.folder / "pki/ca.crt"),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": user, "context": {"cluster": "mlpatterns-test", "user": user}}],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    # ---- components -------------------------------------------------------

    @property
    def ca(self) -> CertificateAuthority:
        """The CA that signed every certificate of this plane (a real node issues more)."""
        if self._ca is None:
            raise ControlPlaneError("the control plane has not been started in this process")
        return self._ca

    def _write_pki(self) -> dict[str, KeyPair]:
        folder = self.folder / "pki"
        ca = self._ca = CertificateAuthority(folder)
        issued = {
            "ca": ca.pair,
            "sa": service_account_keys(folder),
            "serving": ca.issue(
                "apiserver",
                "kube-apiserver",
                server_names=("localhost", "kubernetes", "kubernetes.default.svc"),
                server_ips=tuple(dict.fromkeys(("127.0.0.1", self.address, "10.96.0.1"))),
            ),
            # kubelets accept it for logs, exec and port-forward
            "kubelet-client": ca.issue(
                "apiserver-kubelet-client", "kube-apiserver", organization="system:masters"
            ),
            "admin": ca.issue("admin", "mlpatterns-admin", organization="system:masters"),
            "front-proxy": ca.issue("front-proxy-client", "front-proxy-client"),
            "controller-manager": ca.issue("controller-manager", "system:kube-controller-manager"),
            "scheduler": ca.issue("scheduler", "system:kube-scheduler"),
        }
        for name in ("admin", "controller-manager", "scheduler"):
            pair = issued[name]
            path = self.kubeconfig if name == "admin" else self.folder / f"{name}.kubeconfig"
            self.write_kubeconfig(
                path, name, {"client-certificate": str(pair.cert), "client-key": str(pair.key)}
            )
        return issued

    def _spawn(self, name: str, argv: Sequence[str]) -> Path:
        log = self.folder / "logs" / f"{name}.log"
        self.pids[name] = spawn(argv, log, self.folder, self.die_with_parent)
        self.save()
        return log

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['peer']}"
        log = self._spawn(
            "etcd",
            [
                str(self.bin / "etcd"),
                "--name=default",
                f"--data-dir={self.folder / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync=true",
                "--listen-metrics-urls=",
                "--log-level=warn",
            ],
        )
        wait_until("etcd", lambda: http_ok(f"{client}/health"), 30, log)

    def _start_apiserver(self, pki: dict[str, KeyPair]) -> None:
        log = self._spawn(
            "kube-apiserver",
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.ports['apiserver']}",
                f"--cert-dir={self.folder / 'apiserver'}",
                f"--tls-cert-file={pki['serving'].cert}",
                f"--tls-private-key-file={pki['serving'].key}",
                f"--client-ca-file={pki['ca'].cert}",
                # the aggregation layer (metrics-server's APIService): it proxies as the
                # front proxy, whose name alone the extension servers trust
                f"--requestheader-client-ca-file={pki['ca'].cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki['front-proxy'].cert}",
                f"--proxy-client-key-file={pki['front-proxy'].key}",
                "--enable-aggregator-routing=true",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={pki['kubelet-client'].cert}",
                f"--kubelet-client-key={pki['kubelet-client'].key}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki['sa'].cert}",
                f"--service-account-signing-key-file={pki['sa'].key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
            ],
        )
        wait_until("kube-apiserver", self._api_ready, 90, log)

    def _start_controllers(self, pki: dict[str, KeyPair]) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={self.folder / 'controller-manager.kubeconfig'}",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki['sa'].key}",
                f"--root-ca-file={pki['ca'].cert}",
                f"--cluster-signing-cert-file={pki['ca'].cert}",
                f"--cluster-signing-key-file={pki['ca'].key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        scheduler_kubeconfig = self.folder / "scheduler.kubeconfig"
        self._spawn(
            "kube-scheduler",
            [
                str(self.bin / "kube-scheduler"),
                f"--kubeconfig={scheduler_kubeconfig}",
                f"--authentication-kubeconfig={scheduler_kubeconfig}",
                f"--authorization-kubeconfig={scheduler_kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
            ],
        )

    def _start_kwok(self) -> None:
        stages_dir = Path(
            subprocess.run(
                ["bash", str(REPO / "hack/tools"), "stages"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        stages = self.folder / "kwok-stages.yaml"
        stages.write_text("\n---\n".join((stages_dir / s).read_text() for s in STAGES))
        self._spawn(
            "kwok",
            [
                str(self.bin / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=10.240.0.10",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )

    def _create_nodes(self) -> None:
        nodes = [_fake_node(name, self.taint_fake_nodes) for name in NODE_NAMES]
        self.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(n) for n in nodes))

    # ---- probes -----------------------------------------------------------

    def _api_ready(self) -> bool:
        admin = self.folder / "pki"
        context = ssl.create_default_context(cafile=str(admin / "ca.crt"))
        context.load_cert_chain(str(admin / "admin.crt"), str(admin / "admin.key"))
        return http_ok(f"{self.server}/readyz", context)

    def _has_default_service_account(self) -> bool:
        try:
            self.kubectl("get", "serviceaccount", "default", "-n", "default")
        except ControlPlaneError:
            return False
        return True


def _fake_node(name: str, tainted: bool) -> dict[str, object]:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    taints = [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {"taints": taints} if tainted else {},
        "status": {"capacity": capacity, "allocatable": capacity},
    }
