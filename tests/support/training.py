"""Registering models for tests: training in a subprocess, as a user's run would,
into a given MLPATTERNS_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def train(home: Path, *requests: dict[str, str]) -> list[str]:
    """Run `run_directly` for each request (TrainingRequest fields); the versions."""
    code = (
        "import json, sys\n"
        "from mlpatterns.training.steps import TrainingRequest, run_directly\n"
        "for request in json.loads(sys.argv[1]):\n"
        "    print(run_directly(TrainingRequest(**request)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(requests))],
        env={**os.environ, "MLPATTERNS_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout.split()[-len(requests) :]
