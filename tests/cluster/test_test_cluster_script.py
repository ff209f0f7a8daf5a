"""`hack/test-cluster` as a developer uses it: up, up again, status, down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.conftest import run_test_cluster as script
from tests.support.processes import running

pytestmark = pytest.mark.cluster


def test_up_is_idempotent_and_down_stops_exactly_what_up_started(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    first = script("up", "--dir", str(folder))
    try:
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip().splitlines()[-1] == (
            f"export KUBECONFIG={folder / 'admin.kubeconfig'}"
        )
        pids = json.loads((folder / "cluster.json").read_text())["pids"]
        assert set(pids) == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        }
        assert sorted(p.name for p in (folder / "logs").iterdir()) == sorted(
            f"{name}.log" for name in pids
        )

        second = script("up", "--dir", str(folder))
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        assert json.loads((folder / "cluster.json").read_text())["pids"] == pids
        assert script("status", "--dir", str(folder)).returncode == 0
    finally:
        down = script("down", "--dir", str(folder))
    assert down.returncode == 0, down.stderr
    assert not folder.exists()
    assert not any(running(pid) for pid in pids.values())
    assert script("status", "--dir", str(folder)).returncode == 1
