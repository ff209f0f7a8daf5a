"""The installed distribution, run as a user runs it: real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlpatterns import __version__

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_stdlib_platform_is_not_shadowed(tmp_path: Path) -> None:
    # Run from the repository root, where a folder named platform/ exists.
    code = "import platform, mlpatterns; print(platform.system(), mlpatterns.__version__)"
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Linux", __version__]


def test_console_script() -> None:
    script = Path(sys.executable).with_name("mlpatterns")
    result = run(str(script), "--version")
    assert result.returncode == 0, result.stderr
    assert __version__ in result.stdout
    result = run(str(script), "--help")
    assert result.returncode == 0
    assert "quickstart" in result.stdout


def test_kind_config_is_a_valid_kind_cluster() -> None:
    result = run("go", "run", ".", str(REPO / "kind-config.yaml"), cwd=REPO / "hack/kindcheck")
    assert result.returncode == 0, result.stderr
    assert "3 nodes (1 control-plane)" in result.stdout


def test_kind_checker_rejects_unknown_fields(tmp_path: Path) -> None:
    bad = tmp_path / "kind.yaml"
    bad.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
        "nodes:\n- role: control-plane\n  extraPortMapings: []\n"
    )
    result = run("go", "run", ".", str(bad), cwd=REPO / "hack/kindcheck")
    assert result.returncode == 1
    assert 'unknown field "extraPortMapings"' in result.stderr
