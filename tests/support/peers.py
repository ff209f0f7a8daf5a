"""Other projects' Python packages, each in a virtual environment of its own (their pins
clash with ours), made on first use under ~/.cache/mlpatterns/peers and kept."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import peer_clients

__all__ = ["PEERS", "PEER_ROOT", "extra_python", "peer_client", "peer_python"]

REPO = Path(__file__).resolve().parents[2]
PEER_ROOT = Path.home() / ".cache" / "mlpatterns" / "peers"
PEERS = {
    "kserve": ["kserve==0.21.0", "onnxruntime", "numpy"],
    "mlserver": ["mlserver==1.7.1", "onnxruntime", "numpy"],
}  # seldon-core is the project's own `seldon` extra: extra_python("seldon")


@functools.cache
def peer_python(name: str) -> Path:
    """The Python of `name`'s environment, with PEERS[name] installed (uv, from PyPI)."""
    venv = PEER_ROOT / name
    python = venv / "bin" / "python"
    uv = Path(sys.executable).with_name("uv")
    if not python.exists():
        subprocess.run([str(uv), "venv", "-q", "-p", "3.11", str(venv)], check=True)
    subprocess.run(
        [str(uv), "pip", "install", "-q", "--python", str(python), *PEERS[name]], check=True
    )
    return python


@functools.cache
def extra_python(extra: str) -> Path:
    """The Python of an environment with mlpatterns' dependencies and those of `extra`,
    at the versions of uv.lock (for an extra that conflicts with `dev`). The project
    itself is not installed: run it with PYTHONPATH=<repo>/platform."""
    venv = REPO / ".build" / f"venv-{extra}"
    uv = Path(sys.executable).with_name("uv")
    subprocess.run(
        [str(uv), "sync", "--quiet", "--locked", "--no-install-project", "--extra", extra,
         "--python", "3.11"],
        cwd=REPO,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
    )  # fmt: skip
    return venv / "bin" / "python"


def peer_client(name: str, *args: str) -> dict[str, Any]:
    """What tests/support/peer_clients/<name>_client.py printed, run in `name`'s own
    environment (a peer's, or the project's extra of that name) with `args`."""
    script = Path(peer_clients.__file__).with_name(f"{name}_client.py")
    python = peer_python(name) if name in PEERS else extra_python(name)
    ran = subprocess.run(
        [str(python), str(script), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 0, ran.stderr
    answer: dict[str, Any] = json.loads(ran.stdout)
    return answer
