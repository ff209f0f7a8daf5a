"""A real node for the test control plane: containerd, runc, kubelet, kube-proxy, CNI.

Pods on this node run for real: containerd (its own config, root, state and socket
in the node's folder) starts them with runc, the CNI bridge plugin gives them
addresses on the node's bridge, kube-proxy (iptables mode) carries Service traffic,
and CoreDNS, as a pod, resolves Service names for the cluster's domain only.

`stop` removes everything `start` made: containers and their processes, mounts,
network namespaces, cgroups, kube-proxy's iptables rules, the files kubelet and
the CNI plugins write outside the folder. The network itself (bridge, routes,
guard rules) belongs to `netguard.Guard`, installed before and removed after.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.controlplane import ControlPlane, ControlPlaneError
from tests.support.netguard import NodeNetwork, chains, remove_chains, run
from tests.support.node_config import (
    CGROUP_ROOT,
    NODE_NAME,
    SOCKETS,
    cni_config,
    containerd_config,
    containerd_socket,
    kube_proxy_config,
    kubelet_config,
)
from tests.support.processes import free_port, spawn, terminate, wait_until

__all__ = ["CGROUP_ROOT", "NODE_NAME", "OUTSIDE", "RealNode", "containerd_socket", "remove_netns"]

CONTAINER_LOGS = Path("/var/log/containers")  # kubelet's fixed folder of log symlinks
CNI_CACHE = Path("/var/lib/cni")  # libcni's fixed cache of attachments
NETNS = Path("/var/run/netns")  # where containerd pins pod network namespaces
SHIM_SOCKETS = Path("/run/containerd")  # containerd's fixed folder of shim sockets
# (the namespaces' own folder too: a fresh machine has none until the first pod)
OUTSIDE = (CONTAINER_LOGS, CNI_CACHE, SHIM_SOCKETS, SOCKETS, NETNS)


@dataclass
class RealNode:
    """One real node of `plane`, whose state and logs live in `folder`."""

    folder: Path
    plane: ControlPlane
    net: NodeNetwork = field(default_factory=NodeNetwork)
    die_with_parent: bool = False
    pids: dict[str, int] = field(default_factory=dict)
    found_netns: list[str] = field(default_factory=list)
    found_chains: list[str] = field(default_factory=list)  # kubelet's and kube-proxy's
    # what was in the fixed folders outside `folder` before the node started (None: absent)
    found_outside: dict[str, list[str] | None] = field(default_factory=dict)

    @property
    def containerd_socket(self) -> Path:
        return containerd_socket(self.folder)

    @property
    def state_file(self) -> Path:
        return self.folder / "node.json"

    def ctr(self, *args: str) -> str:
        return run(["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args])

    # ---- lifecycle -------------------------------------------------------

    def start(self, pause_image: str) -> None:
        """Start containerd, kubelet and kube-proxy; the caller imports images, then DNS."""
        for tool in ("kubelet", "kube-proxy"):
            if not (self.plane.bin / tool).exists():
                raise RuntimeError(f"{self.plane.bin / tool} is missing: `hack/tools build node`")
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        self.found_netns = sorted(p.name for p in NETNS.glob("*")) if NETNS.exists() else []
        self.found_outside = {str(path): _listing(path) for path in OUTSIDE}
        self.found_chains = chains("KUBE-")
        self._save()
        ports = {
            name: free_port()
            for name in ("kubelet", "kubelet-healthz", "proxy-healthz", "proxy-metrics")
        }
        self._write_credentials()
        self._start_containerd(pause_image)
        self._cgroups("create")
        self._start_kubelet(ports)
        self._start_kube_proxy(ports)

    def wait_ready(self, timeout: float = 120) -> None:
        """Until kubelet has registered the node (`kubectl wait` refuses an object that
        does not exist yet, which on a busy machine it may not), then until it is Ready."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.plane.kubectl("get", f"node/{NODE_NAME}")
                break
            except ControlPlaneError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        left = max(1.0, deadline - time.monotonic())
        self.plane.kubectl(
            "wait", "--for=condition=Ready", f"node/{NODE_NAME}", f"--timeout={left:.0f}s"
        )

    def stop(self) -> None:
        """Stop every process and container, then undo what the node did to the machine.

        Every step runs even when an earlier one fails; the failures are raised at the end.
        """
        steps = [
            lambda: self._terminate("kubelet"),
            self._stop_containers,
            lambda: self._terminate("kube-proxy"),
            lambda: self._terminate("containerd"),
            self._kill_shims,
            self._unmount,
            self._remove_netns,
            self._remove_pod_links,
            lambda: self._cgroups("remove"),
            self._remove_rules,
            *(
                (lambda p=Path(path), f=found: _remove_new(p, f))
                for path, found in self.found_outside.items()
            ),
        ]
        failures = []
        for step in steps:
            try:
                step()
            except (OSError, RuntimeError) as error:
                failures.append(str(error))
        self._save()
        if failures:
            raise RuntimeError("the node did not stop cleanly: " + "; ".join(failures))

    def _terminate(self, name: str) -> None:
        if name in self.pids:
            terminate(name, self.pids.pop(name))

    def _remove_rules(self) -> None:
        """kube-proxy's rules (its own cleanup), then every chain kubelet made."""
        kube_proxy = self.plane.bin / "kube-proxy"
        if kube_proxy.exists():
            run([str(kube_proxy), "--cleanup"], check=False)
        remove_chains([c for c in chains("KUBE-") if c not in self.found_chains])

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {
            "pids": self.pids,
            "found_netns": self.found_netns,
            "found_outside": self.found_outside,
            "found_chains": self.found_chains,
        }
        self.state_file.write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, folder: Path, plane: ControlPlane, net: NodeNetwork) -> RealNode | None:
        state_file = folder / "node.json"
        if not state_file.exists():
            return None
        state = json.loads(state_file.read_text())
        return cls(folder=folder, plane=plane, net=net, **state)

    # ---- components -------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> Path:
        log = self.folder / "logs" / f"{name}.log"
        self.pids[name] = spawn(argv, log, self.folder, self.die_with_parent)
        self._save()
        return log

    def _write_credentials(self) -> None:
        ca = self.plane.ca
        pki = self.folder / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        for stem, user, group in (
            ("kubelet", f"system:node:{NODE_NAME}", "system:nodes"),
            ("kube-proxy", "system:kube-proxy", None),
        ):
            pair = ca.issue(stem, user, organization=group)
            self.plane.write_kubeconfig(
                self.folder / f"{stem}.kubeconfig",
                stem,
                {"client-certificate": str(pair.cert), "client-key": str(pair.key)},
            )
        # pods get the cluster's resolver only: no upstream nameserver to forward to
        (self.folder / "resolv.conf").write_text("")

    def _start_containerd(self, pause_image: str) -> None:
        folder = self.folder / "containerd"
        (folder / "cni").mkdir(parents=True, exist_ok=True)
        self.containerd_socket.parent.mkdir(parents=True, exist_ok=True)
        config = containerd_config(folder, self.containerd_socket, pause_image)
        (folder / "config.toml").write_text(config)
        (folder / "cni" / "10-mlpatterns.conflist").write_text(
            json.dumps(cni_config(self.net, self.folder / "cni-ipam"), indent=2)
        )
        log = self._spawn("containerd", ["containerd", f"--config={folder / 'config.toml'}"])
        wait_until("containerd", self._containerd_ready, 30, log)

    def _containerd_ready(self) -> bool:
        if not self.containerd_socket.exists():
            return False
        try:
            self.ctr("version")
        except RuntimeError:
            return False
        return True

    def _start_kubelet(self, ports: dict[str, int]) -> None:
        config = self.folder / "kubelet.yaml"
        pki = self.plane.folder / "pki" / "ca.crt"
        config.write_text(
            yaml.safe_dump(kubelet_config(self.folder, pki, self.net, ports), sort_keys=False)
        )
        self._spawn(
            "kubelet",
            [
                str(self.plane.bin / "kubelet"),
                f"--config={config}",
                f"--kubeconfig={self.folder / 'kubelet.kubeconfig'}",
                f"--root-dir={self.folder / 'kubelet'}",
                f"--cert-dir={self.folder / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.net.node_ip}",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self, ports: dict[str, int]) -> None:
        config = self.folder / "kube-proxy.yaml"
        settings = kube_proxy_config(self.folder, self.net, ports)
        config.write_text(yaml.safe_dump(settings, sort_keys=False))
        self._spawn("kube-proxy", [str(self.plane.bin / "kube-proxy"), f"--config={config}"])

    # ---- teardown ---------------------------------------------------------

    def _stop_containers(self) -> None:
        """Kill every container process in the node's cgroups, then containerd's tasks."""
        for pid in _cgroup_pids(CGROUP_ROOT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _cgroup_pids(CGROUP_ROOT) and time.monotonic() < deadline:
            time.sleep(0.1)
        if "containerd" not in self.pids:
            return
        try:
            tasks = self.ctr("tasks", "list", "--quiet").split()
            for task in tasks:
                run(
                    [
                        "ctr",
                        f"--address={self.containerd_socket}",
                        "--namespace=k8s.io",
                        "tasks",
                        "delete",
                        "--force",
                        task,
                    ],
                    check=False,
                )
        except RuntimeError:
            pass

    def _kill_shims(self) -> None:
        """containerd's shims outlive it by design: end those of this node's containerd."""
        marker = str(self.containerd_socket).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and marker in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)

    def _unmount(self) -> None:
        """Unmount everything under the node's folder (overlays, shm, volumes), deepest first."""
        for target in sorted(_mounts_under(self.folder), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)

    def _remove_netns(self) -> None:
        """The pod network namespaces containerd pinned, and their folder's own mount
        if the folder is new (`remove_netns`)."""
        if NETNS.exists():
            new = [p.name for p in NETNS.iterdir() if p.name not in self.found_netns]
            remove_netns(new, folder_is_new=self.found_outside.get(str(NETNS)) is None)

    def _remove_pod_links(self) -> None:
        """The host ends of the pods' veth pairs, on the node's bridge. Deleting a pod's
        network namespace removes its pair, unless the kernel still holds the namespace
        (a socket of the pod's, closed but still closing): then the pair stays, so it
        is deleted here, which frees the namespace of its interfaces at once."""
        listed = run(["ip", "-o", "link", "show", "master", self.net.bridge], check=False)
        for line in listed.splitlines():
            name = line.split(":", 2)[1].strip().split("@", 1)[0]
            run(["ip", "link", "delete", name], check=False)

    def _cgroups(self, action: str) -> None:
        for hierarchy in _cgroup_hierarchies():
            root = hierarchy / CGROUP_ROOT
            if action == "create":
                root.mkdir(exist_ok=True)
                if hierarchy.name == "cpuset":  # a v1 cpuset starts empty: inherit the parent's
                    for knob in ("cpuset.cpus", "cpuset.mems"):
                        (root / knob).write_text((hierarchy / knob).read_text())
            elif root.exists():
                _remove_cgroup_tree(root)


def remove_netns(names: list[str], *, folder_is_new: bool) -> None:
    """Delete the named network namespaces' files from NETNS. `ip netns` makes the
    folder a bind mount of itself the first time it runs; a namespace containerd pinned
    before that lies beneath it, where `ip netns delete` cannot unmount it ("Device or
    resource busy"). So a folder the node made loses that mount first, then each file
    is unmounted (`ip netns delete`, then as often as it is still mounted) and removed."""
    if folder_is_new:
        _unmount_while_mounted(NETNS)
    for name in names:
        path = NETNS / name
        run(["ip", "netns", "delete", name], check=False)
        _unmount_while_mounted(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _unmount_while_mounted(path: Path, attempts: int = 5) -> None:
    """Lazily unmount every mount stacked on `path` (at most `attempts`)."""
    target = str(path.resolve())
    for _ in range(attempts):
        if target not in _mounts_under(Path(target)):
            return
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def _remove_cgroup_tree(root: Path) -> None:
    """Remove a cgroup and its children, deepest first. A child that is already gone
    (runc or the kernel removed it while the walk ran) is what was wanted."""
    for folder, _, _ in os.walk(root, topdown=False):
        try:
            Path(folder).rmdir()
        except OSError as error:  # gone, or dying (ENODEV): what was wanted
            if error.errno not in (errno.ENOENT, errno.ENODEV):
                raise


def _cgroup_hierarchies() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    return [p for p in sorted(base.iterdir()) if p.is_dir() and not p.is_symlink()]


def _cgroup_pids(name: str) -> list[int]:
    pids: set[int] = set()
    pids_root = Path("/sys/fs/cgroup/pids") / name
    if pids_root.exists():
        for folder, _, _ in os.walk(pids_root):
            try:
                procs = (Path(folder) / "cgroup.procs").read_text()
            except OSError as error:  # gone, or dying (ENODEV): no process in it
                if error.errno not in (errno.ENOENT, errno.ENODEV):
                    raise
                continue
            pids.update(int(line) for line in procs.split())
    return sorted(pids)


def _mounts_under(folder: Path) -> list[str]:
    prefix = str(folder)
    targets = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target == prefix or target.startswith(prefix + "/"):
            targets.append(target)
    return targets


def _listing(folder: Path) -> list[str] | None:
    if not folder.exists():
        return None
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _remove_new(folder: Path, found: list[str] | None) -> None:
    """Remove what appeared under `folder` since `found` was listed (all of it if new)."""
    if not folder.exists():
        return
    if found is None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if str(path.relative_to(folder)) not in found:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
