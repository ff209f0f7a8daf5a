"""The session's real control plane, for every test marked `cluster`.

Started once per test run in a temporary folder and torn down at the end, also
when tests fail; its processes are tied to the test process, so none outlives it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.crds import install_istio_crds, install_prometheus_operator_crds


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
    env = dict(os.environ)
    # the tools, and this environment's scripts (mlpatterns, kubectl-mlpatterns), as a
    # user who installed the package has them on PATH
    scripts = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join([str(control_plane.bin), str(scripts), env.get("PATH", "")])
    env["KUBECONFIG"] = str(control_plane.kubeconfig)
    env["HELM_CACHE_HOME"] = str(control_plane.folder / "helm/cache")
    env["HELM_CONFIG_HOME"] = str(control_plane.folder / "helm/config")
    env["HELM_DATA_HOME"] = str(control_plane.folder / "helm/data")
    return env


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


@pytest.fixture(scope="session")
def istio_crds(control_plane: ControlPlane) -> list[str]:
    return install_istio_crds(control_plane)


@pytest.fixture(scope="session")
def prometheus_operator_crds(control_plane: ControlPlane) -> list[str]:
    return install_prometheus_operator_crds(control_plane)
