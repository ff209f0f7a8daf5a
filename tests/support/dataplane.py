"""The compiled data plane's binary for the tests: `MLPATTERNS_DATAPLANE` when set (as
`hack/test` sets it), else built (or found built) by `hack/dataplane`."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

__all__ = ["DATA_PLANES", "data_plane_env", "dataplane_binary"]

DATA_PLANES = ["python", "compiled"]  # what `serve gateway --data-plane` takes

REPO = Path(__file__).resolve().parents[2]


@cache
def dataplane_binary() -> Path:
    given = os.environ.get("MLPATTERNS_DATAPLANE")
    if given:
        return Path(given)
    built = subprocess.run(
        ["bash", str(REPO / "hack" / "dataplane"), "path"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(built.stdout.strip().splitlines()[-1])


def data_plane_env(plane: str) -> dict[str, str]:
    """The environment that makes `serve gateway` use `plane`."""
    env = {"MLPATTERNS_GATEWAY_DATA_PLANE": plane}
    if plane == "compiled":
        env["MLPATTERNS_DATAPLANE"] = str(dataplane_binary())
    return env
