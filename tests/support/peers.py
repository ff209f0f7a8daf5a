"""Other projects' Python packages, each in a virtual environment of its own (their pins
clash with ours), made on first use under ~/.cache/mlpatterns/peers and kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["PEERS", "PEER_ROOT", "peer_python"]

PEER_ROOT = Path.home() / ".cache" / "mlpatterns" / "peers"
PEERS = {
    "kserve": ["kserve==0.21.0", "onnxruntime", "numpy"],
    "mlserver": ["mlserver==1.7.1", "onnxruntime", "numpy"],
    # the last Apache-2.0 release: 1.18 and later are under the Business Source License
    "seldon": ["seldon-core==1.17.1"],
}


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
