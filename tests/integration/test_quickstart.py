"""The README's first command, minus the environment set-up: `mlpatterns quickstart`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))


def test_quickstart_trains_and_registers_two_models(tmp_path: Path) -> None:
    env = {**os.environ, "MLPATTERNS_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run(
        [MLPATTERNS, "quickstart"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Done: created the state folder" in result.stdout
    listed = subprocess.run(
        [MLPATTERNS, "models", "ls", "iris", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    models = json.loads(listed.stdout)
    assert [m["model_type"] for m in models] == ["logreg", "random_forest"]
    assert (tmp_path / "registry" / "models" / "iris").is_dir()
