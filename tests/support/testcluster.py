"""The test cluster: the control plane alone (kwok nodes), or with a real node beside it.

    python -m tests.support.testcluster up|down|status [--dir DIR] [--real-node]

With `--real-node` the order is the safety argument: the network guard goes in
before any component starts and comes out after every one has stopped; the API
server listens on the node's address (which its pods reach) instead of loopback;
the kwok nodes are tainted, so workloads land on the real node.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import yaml

from tests.support.addons import ADDON_DEPLOYMENTS, coredns_objects, local_path_objects
from tests.support.controlplane import REPO, ControlPlane
from tests.support.images import build, import_into_containerd
from tests.support.netguard import HOLDER, Guard, NodeNetwork
from tests.support.node import RealNode
from tests.support.node_config import CLUSTER_DOMAIN
from tests.support.processes import running, wait_until

__all__ = ["ANOTHER_RUN_WAIT", "RealCluster", "main", "make_way"]

ADDON_IMAGES = ("pause", "coredns", "local-path", "local-path-helper")


SOCKET_PATH_BYTES = 107  # sun_path holds 108 bytes, the last a NUL
ANOTHER_RUN_WAIT = 30 * 60  # seconds: longer than another test run's real-node modules


@dataclass
class RealCluster:
    """The control plane, a real node and the guard around them, in one folder."""

    folder: Path
    die_with_parent: bool = False
    net: NodeNetwork = field(default_factory=NodeNetwork)

    def __post_init__(self) -> None:
        self.guard = Guard(self.net, self.folder / "guard.json")
        self.plane = ControlPlane(
            folder=self.folder,
            die_with_parent=self.die_with_parent,
            address=self.net.node_ip,
            taint_fake_nodes=True,
        )
        self.node = RealNode(
            self.folder / "node", self.plane, self.net, die_with_parent=self.die_with_parent
        )

    def start(self) -> None:
        longest = len(str(self.node.folder / "kubelet" / "device-plugins" / "kubelet.sock"))
        if longest > SOCKET_PATH_BYTES:
            room = SOCKET_PATH_BYTES - longest + len(str(self.folder))
            raise ValueError(
                f"{self.folder} is too long a folder for a real node: kubelet binds sockets "
                f"under it, and a socket's path has at most {SOCKET_PATH_BYTES} bytes; "
                f"choose a --dir of at most {room} characters"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        images = {image.role: image for image in build(ADDON_IMAGES)}
        self.guard.install()
        try:
            self.plane.start()
            self.node.start(images["pause"].containerd_name)
            import_into_containerd(self.node.containerd_socket, images.values())
            self.node.wait_ready()
            volumes = self.node.folder / "volumes"
            volumes.mkdir(parents=True, exist_ok=True)
            objects = [
                *coredns_objects(images["coredns"].reference, self.net),
                *local_path_objects(
                    images["local-path"].reference, images["local-path-helper"].reference, volumes
                ),
            ]
            self.plane.kubectl(
                "apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(o) for o in objects)
            )
            for namespace, deployment in ADDON_DEPLOYMENTS:
                self.plane.kubectl(
                    "-n", namespace, "rollout", "status", deployment, "--timeout=120s"
                )
            # ready once kube-proxy has the endpoint too, which trails the pod by a second
            wait_until("cluster DNS through its Service", self._dns_answers, 60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the node, then the control plane, then take the guard out; keep no state."""
        try:
            self.node.stop()
        finally:
            try:
                self.plane.stop()
            finally:
                self.guard.remove()
                shutil.rmtree(self.folder, ignore_errors=True)

    def _dns_answers(self) -> bool:
        query = dns.message.make_query(f"kubernetes.default.svc.{CLUSTER_DOMAIN}", "A")
        try:
            answer = dns.query.udp(query, self.net.dns_ip, timeout=1)
        except (OSError, dns.exception.DNSException):
            return False
        return bool(answer.answer)

    @classmethod
    def load(cls, folder: Path) -> RealCluster | None:
        guard = Guard.load(folder / "guard.json")
        plane = ControlPlane.load(folder)
        if guard is None:
            return None
        cluster = cls(folder=folder, net=guard.net)
        cluster.guard = guard
        if plane is not None:
            cluster.plane = plane
        node = RealNode.load(folder / "node", cluster.plane, guard.net)
        if node is not None:
            cluster.node = node
        return cluster

    def healthy(self) -> bool:
        return self.plane.healthy() and all(running(pid) for pid in self.node.pids.values())

    def anything_running(self) -> bool:
        return any(running(pid) for pid in [*self.plane.pids.values(), *self.node.pids.values()])


def make_way(net: NodeNetwork, wait: float = 0) -> None:
    """Make way for a new test node on this machine, where only one can be up.

    A node whose processes are all gone (its run was killed) is stopped from the state
    it saved. A node another test run holds is waited for, up to `wait` seconds. A node
    `hack/test-cluster up` started, or a bridge no saved state accounts for, is refused.
    """
    deadline = time.monotonic() + wait
    while Path(f"/sys/class/net/{net.bridge}").exists():
        holder = json.loads(HOLDER.read_text()) if HOLDER.exists() else {}
        pid, folder = holder.get("pid"), holder.get("folder")
        cluster = RealCluster.load(Path(folder)) if folder else None
        another_run = pid is not None and pid != os.getpid() and running(pid)
        if cluster is not None and not another_run and not cluster.anything_running():
            print(f"stopping the test node a killed run left in {folder}", file=sys.stderr)
            cluster.stop()
        elif another_run and time.monotonic() < deadline:
            time.sleep(5)
        elif another_run:
            raise RuntimeError(
                f"the test node is still held by process {pid} (another test run) "
                f"after {wait:.0f}s; its state is in {folder}"
            )
        elif cluster is not None:
            raise RuntimeError(
                f"a test node is up in {folder} (stop it with `hack/test-cluster down "
                f"--dir {folder}`)"
            )
        else:
            raise RuntimeError(
                f"interface {net.bridge} exists and no saved state accounts for it: "
                f"if nothing uses it, `ip link delete {net.bridge}`"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/test-cluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", type=Path, default=REPO / ".test-cluster", help="state folder")
    parser.add_argument(
        "--real-node", action="store_true", help="add a real node (containerd, kubelet, DNS)"
    )
    args = parser.parse_args(argv)
    folder: Path = args.dir.resolve()
    real = RealCluster.load(folder)
    plane = real.plane if real else ControlPlane.load(folder)
    healthy = real.healthy() if real else plane is not None and plane.healthy()
    if args.command == "status":
        print(f"{folder}: {'running' if healthy else 'not running'}")
        return 0 if healthy else 1
    if args.command == "down":
        if real:
            real.stop()
        elif plane:
            plane.stop()
        shutil.rmtree(folder, ignore_errors=True)
        print(f"stopped; removed {folder}")
        return 0
    if healthy and (real is not None) == args.real_node:
        print(f"already running in {folder}", file=sys.stderr)
    else:
        if real:
            real.stop()  # half-dead leftovers from an earlier run, or the other kind
        elif plane:
            plane.stop()
        started = time.monotonic()
        if args.real_node:
            try:
                make_way(NodeNetwork())
            except RuntimeError as refused:  # another node is up: nothing was started
                print(refused, file=sys.stderr)
                return 1
            try:
                RealCluster(folder=folder).start()
            except ValueError as refused:  # a folder it cannot use: nothing was started
                print(refused, file=sys.stderr)
                return 2
        else:
            ControlPlane(folder=folder).start()
        print(f"cluster ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    print(f"export KUBECONFIG={folder / 'admin.kubeconfig'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
