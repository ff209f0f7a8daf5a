"""The session's real control plane, for every test marked `cluster`.

Started once per test run in a temporary folder and torn down at the end, also
when tests fail; its processes are tied to the test process, so none outlives it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.crds import (
    install_istio_crds,
    install_kfp_crds,
    install_prometheus_operator_crds,
    install_seldon_crds,
)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(folder=tmp_path_factory.mktemp("control-plane"), die_with_parent=True)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def tool_env(control_plane: ControlPlane) -> dict[str, str]:
    """Environment for helm and kubectl subprocesses: the tools on PATH, admin kubeconfig."""
    return control_plane.tool_environment()


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting for finalizers)."""
    name = "t-" + re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:40].strip("-")
    control_plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false")


def repo_path(*parts: str) -> Path:
    return Path(__file__).resolve().parents[2].joinpath(*parts)


def run_test_cluster(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `hack/test-cluster` as a developer does."""
    return subprocess.run(
        ["bash", str(repo_path("hack/test-cluster")), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def istio_crds(control_plane: ControlPlane) -> list[str]:
    return install_istio_crds(control_plane)


@pytest.fixture(scope="session")
def prometheus_operator_crds(control_plane: ControlPlane) -> list[str]:
    return install_prometheus_operator_crds(control_plane)


@pytest.fixture(scope="session")
def kfp_crds(control_plane: ControlPlane) -> list[str]:
    return install_kfp_crds(control_plane)


@pytest.fixture(scope="session")
def seldon_crds(control_plane: ControlPlane) -> list[str]:
    return install_seldon_crds(control_plane)
