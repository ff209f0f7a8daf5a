"""What a real node may change on this machine, read so that before and after compare.

Rules (all tables, without counters), routes, links, network namespaces, mounts,
the kernel settings the node touches, processes of the node's programs, its cgroups
and the fixed folders kubelet, libcni and containerd write outside the node's folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.netguard import IPTABLES, KERNEL_SETTINGS, run
from tests.support.node import CGROUP_ROOT, OUTSIDE

__all__ = ["NODE_PROGRAMS", "differences", "machine_state"]

# the node's own programs: a container's processes (whatever they are) are found by
# its cgroup and its shim; the control plane and servers of other tests come and go
NODE_PROGRAMS = (
    "containerd",
    "containerd-shim-runc-v2",
    "containerd-shim",
    "kubelet",
    "kube-proxy",
    "coredns",
    "pause",
)


def _rules() -> list[str]:
    """Both families' rules and chains; a table with nothing in it changes nothing and
    is left out (iptables-nft creates one on first use and never deletes it)."""
    kept = []
    for program in IPTABLES:
        for table in re.split(r"^\*", run([f"{program}-save"]), flags=re.MULTILINE)[1:]:
            lines = [re.sub(r"\[\d+:\d+\]", "", line).strip() for line in table.splitlines()]
            lines = [line for line in lines if line and not line.startswith("#")]
            empty = all(line.endswith("ACCEPT") for line in lines if line.startswith(":"))
            if empty and not any(line.startswith("-A") for line in lines):
                continue
            kept += [f"{program} {lines[0]} {line}" for line in lines[1:]]
    return kept


def _processes() -> list[str]:
    names = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                name = (proc / "comm").read_text().strip()
            except OSError:
                continue
            if name in NODE_PROGRAMS:
                names.append(name)
    return sorted(names)


def machine_state() -> dict[str, object]:
    def listing(folder: Path) -> list[str] | None:
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else None

    return {
        "iptables": _rules(),
        "routes": run(["ip", "route", "show", "table", "all"]).splitlines(),
        "links": sorted(
            line.split(":")[1].strip() for line in run(["ip", "-o", "link"]).splitlines()
        ),
        "netns": listing(Path("/var/run/netns")),
        "mounts": sorted(
            line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
        ),
        "sysctls": {
            name: (Path("/proc/sys") / name).read_text().strip()
            for name in KERNEL_SETTINGS
            if (Path("/proc/sys") / name).exists()
        },
        "processes": _processes(),
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT}")),
        "outside": {str(folder): listing(folder) for folder in OUTSIDE},
    }


def differences(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    """Each part that changed, with what was added and what went missing."""
    changed: dict[str, object] = {}
    for key in before:
        if before[key] == after[key]:
            continue
        was, now = before[key], after[key]
        if isinstance(was, list) and isinstance(now, list):
            changed[key] = {
                "added": [x for x in now if x not in was],
                "missing": [x for x in was if x not in now],
            }
        else:
            changed[key] = {"before": was, "after": now}
    return changed
