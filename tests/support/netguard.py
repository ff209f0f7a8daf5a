"""The test node's network, and the rules that keep it inside this machine.

The pod range and the Service range exist only here: the node's bridge carries the
pod subnet, the rest of the pod range is unreachable, the Service range is routed
to the bridge (kube-proxy rewrites it to pod addresses before anything is sent).
Rules in the mangle table, which kube-proxy never touches, drop every packet to or
from those ranges that would enter or leave by any interface but the bridge and
loopback, and keep pods from reaching any host address but the node's own. Packets
are never masqueraded, so a pod cannot reach the world even by mistake.

`Guard.install` runs before any component starts; `Guard.remove` puts back exactly
what it found (routes, chains, sysctls), and is safe to call twice. While a guard is
installed, `HOLDER` names the process that installed it and the node's state folder,
so that a later run can tell a node in use from one a killed run left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "HOLDER",
    "IPTABLES",
    "KERNEL_SETTINGS",
    "Guard",
    "NodeNetwork",
    "chains",
    "guard_rules",
    "remove_chains",
    "run",
]

IPTABLES = ("iptables", "ip6tables")

# the one test node's holder: {"pid": installing process, "folder": state folder or null}
HOLDER = Path("/run/mlpatterns-test-node.json")

# sysctls the node needs (the first two) or that kubelet and kube-proxy may set:
# recorded before the node starts and written back when it stops
KERNEL_SETTINGS = (
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/ipv4/conf/all/route_localnet",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


@dataclass(frozen=True)
class NodeNetwork:
    """Addresses of the one test node; nothing here is routable beyond this machine."""

    bridge: str = "mlp0"
    node_ip: str = "10.244.0.1"
    node_subnet: str = "10.244.0.0/24"
    pod_range: str = "10.244.0.0/16"
    service_range: str = "10.96.0.0/16"
    dns_ip: str = "10.96.0.10"

    @property
    def prefix_length(self) -> int:
        return int(self.node_subnet.split("/")[1])


def guard_rules(net: NodeNetwork) -> dict[str, list[list[str]]]:
    """The mangle-table chains (chain -> rules) that fence the node's ranges in, each
    rule written as `iptables -S` prints it back."""
    own = (net.pod_range, net.service_range)
    return {
        # arriving from outside: nothing may be addressed to (or claim to be from) the ranges
        "MLP-GUARD-IN": [
            ["-i", "lo", "-j", "RETURN"],
            ["-i", net.bridge, "-j", "RETURN"],
            *(["-d", cidr, "-j", "DROP"] for cidr in own),
            ["-s", net.pod_range, "-j", "DROP"],
        ],
        # leaving: nothing to or from the ranges goes out of any other interface
        "MLP-GUARD-OUT": [
            ["-o", "lo", "-j", "RETURN"],
            ["-o", net.bridge, "-j", "RETURN"],
            *(["-d", cidr, "-j", "DROP"] for cidr in own),
            ["-s", net.pod_range, "-j", "DROP"],
        ],
        # forwarded: only between the node's pods, never to or from another interface
        "MLP-GUARD-FWD": [
            ["-i", net.bridge, "-o", net.bridge, "-j", "RETURN"],
            ["-i", net.bridge, "-j", "DROP"],
            ["-o", net.bridge, "-j", "DROP"],
        ],
        # pods reach the host at the node address only (the API server's, kubelet's)
        "MLP-GUARD-HOST": [
            ["-d", f"{net.node_ip}/32", "-i", net.bridge, "-j", "RETURN"],
            ["-i", net.bridge, "-j", "DROP"],
        ],
    }


HOOKS = {  # built-in chain -> guard chain it jumps to
    "PREROUTING": "MLP-GUARD-IN",
    "POSTROUTING": "MLP-GUARD-OUT",
    "FORWARD": "MLP-GUARD-FWD",
    "INPUT": "MLP-GUARD-HOST",
}


def run(argv: Sequence[str], check: bool = True) -> str:
    """Run a system command; raise with its message when it fails and `check` is set."""
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def _read_settings() -> dict[str, str]:
    settings = {}
    for name in KERNEL_SETTINGS:
        path = _sysctl_path(name)
        if path.exists():
            settings[name] = path.read_text().strip()
    return settings


@dataclass
class Guard:
    """Installs and removes the node's bridge, routes, guard rules and kernel settings."""

    net: NodeNetwork = field(default_factory=NodeNetwork)
    state_file: Path | None = None
    found_settings: dict[str, str] = field(default_factory=dict)
    forwarding_was_off: bool = False

    def install(self) -> None:
        if Path(f"/sys/class/net/{self.net.bridge}").exists():
            raise RuntimeError(
                f"interface {self.net.bridge} exists: a test node is up already "
                "(stop it with `hack/test-cluster down --dir DIR`)"
            )
        folder = None if self.state_file is None else str(self.state_file.parent)
        HOLDER.write_text(json.dumps({"pid": os.getpid(), "folder": folder}))
        self.found_settings = _read_settings()
        self.forwarding_was_off = self.found_settings.get("net/ipv4/ip_forward") == "0"
        self._save()
        net = self.net
        # the fence first: no packet of the ranges can leave once anything exists
        for chain, rules in guard_rules(net).items():
            run(["iptables", "-t", "mangle", "-N", chain])
            for rule in rules:
                run(["iptables", "-t", "mangle", "-A", chain, *rule])
            if chain == "MLP-GUARD-FWD" and self.forwarding_was_off:
                # the machine forwarded nothing before: it forwards nothing else now
                run(["iptables", "-t", "mangle", "-A", chain, "-j", "DROP"])
        for hook, chain in HOOKS.items():
            run(["iptables", "-t", "mangle", "-I", hook, "1", "-j", chain])
        run(["ip", "link", "add", net.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{net.node_ip}/{net.prefix_length}", "dev", net.bridge])
        run(["ip", "link", "set", net.bridge, "up"])
        run(["ip", "route", "add", "unreachable", net.pod_range])
        run(["ip", "route", "add", net.service_range, "dev", net.bridge, "src", net.node_ip])
        _sysctl_path("net/ipv4/ip_forward").write_text("1")
        _sysctl_path("net/bridge/bridge-nf-call-iptables").write_text("1")

    def remove(self) -> None:
        net = self.net
        run(["ip", "route", "del", net.service_range], check=False)
        run(["ip", "route", "del", "unreachable", net.pod_range], check=False)
        run(["ip", "link", "del", net.bridge], check=False)
        for name, value in self.found_settings.items():
            with contextlib.suppress(OSError):
                _sysctl_path(name).write_text(value)
        for hook, chain in HOOKS.items():
            while _deleted(hook, chain):
                pass
        for chain in guard_rules(net):
            run(["iptables", "-t", "mangle", "-F", chain], check=False)
            run(["iptables", "-t", "mangle", "-X", chain], check=False)
        HOLDER.unlink(missing_ok=True)

    def installed_rules(self) -> Iterator[str]:
        """The mangle table's rules as iptables-save prints them."""
        yield from run(["iptables-save", "-t", "mangle"]).splitlines()

    def _save(self) -> None:
        if self.state_file is not None:
            self.state_file.write_text(json.dumps(asdict(self), default=str, indent=2))

    @classmethod
    def load(cls, state_file: Path) -> Guard | None:
        if not state_file.exists():
            return None
        state = json.loads(state_file.read_text())
        return cls(
            net=NodeNetwork(**state["net"]),
            state_file=state_file,
            found_settings=state["found_settings"],
            forwarding_was_off=state["forwarding_was_off"],
        )


def chains(prefix: str) -> list[str]:
    """Every `program table chain` whose chain name starts with `prefix`, v4 and v6."""
    found = []
    for program in IPTABLES:
        table = ""
        for line in run([f"{program}-save"]).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and line[1:].startswith(prefix):
                found.append(f"{program} {table} {line[1:].split()[0]}")
    return found


def remove_chains(names: list[str]) -> None:
    """Delete each `program table chain`, with every rule anywhere that jumps to it."""
    for entry in names:
        program, table, chain = entry.split()
        for line in run([f"{program}-save", "-t", table], check=False).splitlines():
            if line.startswith("-A ") and shlex.split(line)[-1] == chain:
                run([program, "-t", table, "-D", *shlex.split(line)[1:]], check=False)
    for entry in names:
        program, table, chain = entry.split()
        run([program, "-t", table, "-F", chain], check=False)
    for entry in names:
        program, table, chain = entry.split()
        run([program, "-t", table, "-X", chain], check=False)


def _deleted(hook: str, chain: str) -> bool:
    """Delete one jump from `hook` to `chain`; False when there is none left."""
    out = subprocess.run(
        ["iptables", "-t", "mangle", "-D", hook, "-j", chain], capture_output=True, check=False
    )
    return out.returncode == 0
