"""Process-wide settings shared by the long-running servers (model server, gateway)."""

from __future__ import annotations

import gc
import math
import os
from pathlib import Path

__all__ = ["CGROUP_ROOT", "calm_garbage_collector", "cpus_in_quota", "usable_cpus"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


def calm_garbage_collector() -> None:
    """What start-up allocated (model, session, metrics, routes) lives as long as the
    server: keep it out of the collector's scans, and collect young objects less
    often, so that collection pauses do not land on request latency."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def cpus_in_quota(cpu_max: str) -> int | None:
    """The whole CPUs a cgroup v2 `cpu.max` line allows ("200000 100000" -> 2, a
    fraction rounds up), or None when it sets no limit ("max 100000")."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def usable_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process can really use: the cores it may run on (`taskset`, a
    cpuset), capped by its CPU quota (a container's CPU limit). `os.cpu_count()`
    counts the host's cores: a pod limited to one CPU on a 16-core node would start
    16 inference threads that take turns on one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not every platform has affinity masks
        cores = os.cpu_count() or 1
    try:
        quota = cpus_in_quota((cgroup_root / "cpu.max").read_text())
    except OSError:  # cgroup v1, or no cgroup file system
        quota = None
    return max(1, min(cores, quota) if quota is not None else cores)
