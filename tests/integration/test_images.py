"""Each image's install step without Docker: the project installed with one role's
extra into a clean environment (uv, at the versions of uv.lock, from the package
registry's cache), then run.
An image must hold its role's commands and none of the other roles' libraries."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
FOREIGN = {  # what must not be in an image of this role
    "serving": ("sklearn", "kfp", "kopf", "matplotlib"),
    "operator": ("sklearn", "onnxruntime", "kfp", "matplotlib"),
    "training": ("kopf", "uvicorn", "matplotlib"),
    "seldon": ("sklearn", "kfp", "kopf", "matplotlib", "uvicorn", "starlette"),
}
IMPORTS = {  # what the role's processes load
    "serving": ("mlpatterns.serving.server", "mlpatterns.routing.gateway_app"),
    "operator": ("mlpatterns.operator.handlers",),
    "training": ("mlpatterns.training.steps", "pipelines.compile"),
    "seldon": ("mlpatterns.seldon", "seldon_core.microservice"),
}
RUNS = {
    "serving": ("serve", "model", "--help"),
    "operator": ("operator", "run", "--help"),
    "training": ("train", "--help"),
    "seldon": ("--help",),
}


@pytest.mark.parametrize("role", sorted(FOREIGN))
def test_role_install_runs_and_carries_only_its_role(role: str, tmp_path: Path) -> None:
    uv = shutil.which("uv") or str(REPO / ".venv" / "bin" / "uv")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", "3.11", str(venv)], check=True, timeout=120)
    # the role's dependencies at the versions of uv.lock, as the image's wheelhouse has
    # them (a fresh resolution could bring in what the lock does not, and hide a gap)
    locked = tmp_path / "requirements.txt"
    subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", f"--extra={role}",
         f"--output-file={locked}", "--quiet"],
        check=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    python = str(venv / "bin" / "python")
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", python, "-r", str(locked)], check=True, timeout=600
    )
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", python, "--no-deps", str(REPO)],
        check=True,
        timeout=600,
    )
    ran = subprocess.run(
        [str(venv / "bin" / "mlpatterns"), *RUNS[role]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for module in IMPORTS[role]:
        loaded = subprocess.run(
            [str(venv / "bin" / "python"), "-c", f"import {module}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert loaded.returncode == 0, loaded.stderr
    for module in FOREIGN[role]:
        probe = subprocess.run(
            [str(venv / "bin" / "python"), "-c", f"import {module}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert probe.returncode != 0, f"the {role} image would carry {module}"
