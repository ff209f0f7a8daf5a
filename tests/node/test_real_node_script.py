"""`hack/test-cluster up --real-node` as a developer uses it, and `down` leaving the
machine exactly as it was found (rules, routes, links, mounts, sysctls, processes)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.cluster.conftest import run_test_cluster as script
from tests.support.controlplane import tools_bin
from tests.support.machine import differences, machine_state

pytestmark = pytest.mark.node


def test_up_real_node_runs_pods_and_down_leaves_the_machine_as_found() -> None:
    # a short folder: kubelet binds sockets under it, and a socket's path has at most
    # 107 bytes (pytest's own folders pass that once their numbers reach three digits)
    folder = Path(tempfile.mkdtemp(prefix="mlp-", dir="/tmp")) / "cluster"
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


def test_up_refuses_a_folder_too_long_for_kubelets_sockets() -> None:
    folder = Path("/tmp") / ("x" * 80) / "cluster"
    up = script("up", "--real-node", "--dir", str(folder))
    assert up.returncode != 0
    assert "a socket's path has at most 107 bytes" in up.stderr
    assert not folder.exists()
