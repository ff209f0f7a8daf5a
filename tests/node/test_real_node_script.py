"""`hack/test-cluster up --real-node` as a developer uses it, and `down` leaving the
machine exactly as it was found (rules, routes, links, mounts, sysctls, processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.cluster.conftest import run_test_cluster as script
from tests.support.controlplane import tools_bin
from tests.support.machine import differences, machine_state
from tests.support.processes import running, wait_until
from tests.support.testcluster import RealCluster

pytestmark = pytest.mark.node


def _short_folder() -> Path:
    """A folder short enough for kubelet's sockets under it (a socket's path has at most
    107 bytes; pytest's own folders pass that once their numbers reach three digits)."""
    return Path(tempfile.mkdtemp(prefix="mlp-", dir="/tmp")) / "cluster"


def test_up_real_node_runs_pods_and_down_leaves_the_machine_as_found() -> None:
    folder = _short_folder()
    before = machine_state()
    up = script("up", "--real-node", "--dir", str(folder))
    try:
        assert up.returncode == 0, up.stderr
        kubeconfig = folder / "admin.kubeconfig"
        assert up.stdout.strip().splitlines()[-1] == f"export KUBECONFIG={kubeconfig}"
        assert script("status", "--dir", str(folder)).returncode == 0
        again = script("up", "--real-node", "--dir", str(folder))
        assert "already running" in again.stderr
        nodes = json.loads(
            subprocess.run(
                [
                    str(tools_bin() / "kubectl"),
                    f"--kubeconfig={kubeconfig}",
                    "get",
                    "nodes",
                    "-o",
                    "json",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["items"]
        by_name = {n["metadata"]["name"]: n for n in nodes}
        assert by_name["mlp-node"]["status"]["nodeInfo"]["containerRuntimeVersion"].startswith(
            "containerd://"
        )
        for name in ("kwok-node-0", "kwok-node-1"):
            assert by_name[name]["spec"]["taints"][0]["effect"] == "NoSchedule"
    finally:
        down = script("down", "--dir", str(folder))
    assert down.returncode == 0, down.stderr
    assert not folder.exists()
    assert differences(before, machine_state()) == {}
    assert script("status", "--dir", str(folder)).returncode == 1
    folder.parent.rmdir()


def test_up_refuses_a_node_in_use_and_stops_one_a_killed_run_left() -> None:
    first, second = _short_folder(), _short_folder()
    before = machine_state()
    up = script("up", "--real-node", "--dir", str(first))
    try:
        assert up.returncode == 0, up.stderr
        refused = script("up", "--real-node", "--dir", str(second))
        assert refused.returncode == 1
        assert f"a test node is up in {first}" in refused.stderr
        assert not second.exists()
        # killed as a killed run's are: its pods keep running under their shims
        left = RealCluster.load(first)
        assert left is not None
        pids = [*left.plane.pids.values(), *left.node.pids.values()]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_until("the killed node's processes gone", lambda: not any(map(running, pids)), 30)
        up = script("up", "--real-node", "--dir", str(second))
        assert up.returncode == 0, up.stderr
        assert f"stopping the test node a killed run left in {first}" in up.stderr
        assert not first.exists()
    finally:
        script("down", "--dir", str(second))
        script("down", "--dir", str(first))
    assert differences(before, machine_state()) == {}
    first.parent.rmdir()
    second.parent.rmdir()


def test_up_refuses_a_folder_too_long_for_kubelets_sockets() -> None:
    folder = Path("/tmp") / ("x" * 80) / "cluster"
    up = script("up", "--real-node", "--dir", str(folder))
    assert up.returncode != 0
    assert "a socket's path has at most 107 bytes" in up.stderr
    assert not folder.exists()


HIDDEN_NAMESPACE = """
import subprocess, sys
from pathlib import Path
from tests.support.node import NETNS, remove_netns

def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)

sh("mount", "-t", "tmpfs", "mlp-test", "/run")  # this mount namespace's own /run
NETNS.mkdir()
(NETNS / "pinned").touch()  # as containerd pins a pod's namespace, before any `ip netns`
sh("mount", "--bind", "/proc/self/ns/net", str(NETNS / "pinned"))
sh("ip", "netns", "add", "later")  # makes the folder a bind mount of itself
refused = sh("ip", "netns", "delete", "pinned")
remove_netns(["pinned", "later"], folder_is_new=True)
mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
print(refused.returncode, sorted(p.name for p in NETNS.iterdir()),
      [m for m in mounts if m.startswith("/run/netns")])
"""


def test_a_pod_namespace_hidden_by_the_folder_s_own_mount_is_still_removed() -> None:
    """What a fresh machine's first node left behind: containerd pinned pod namespaces
    in a new /run/netns, then `ip netns` bind-mounted the folder over itself, hiding
    them from `ip netns delete`. Run in a private mount namespace of its own."""
    ran = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", HIDDEN_NAMESPACE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split("\n")[0] == "1 [] []"  # ip alone fails; nothing is left
