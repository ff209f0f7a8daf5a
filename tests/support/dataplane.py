"""The compiled data plane's binary for the tests: `MLPATTERNS_DATAPLANE` when set (as
`hack/test` sets it), else built (or found built) by `hack/dataplane`."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

__all__ = ["dataplane_binary"]

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
