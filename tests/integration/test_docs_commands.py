"""Every shell block the README and docs/ mark `bash runnable` runs as written: each
page's blocks in order, in one bash with `set -euo pipefail`, from a folder that
holds the repository's files (so relative paths work and what the commands write
stays out of the checkout), with a fresh MLPATTERNS_HOME and the project's
environment active, as the pages assume (`source .venv/bin/activate`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUNNABLE = re.compile(r"^```bash runnable\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def runnable_blocks(page: Path) -> list[str]:
    return RUNNABLE.findall(page.read_text())


def test_the_front_door_and_every_area_have_runnable_commands() -> None:
    marked = {page.name for page in PAGES if runnable_blocks(page)}
    assert {"README.md", "training.md", "lifecycle.md", "operation.md", "settings.md"} <= marked


@pytest.mark.parametrize(
    "page", [p for p in PAGES if runnable_blocks(p)], ids=lambda page: page.name
)
def test_runnable_commands_work_as_written(page: Path, tmp_path: Path) -> None:
    work = tmp_path / "checkout"
    work.mkdir()
    for entry in REPO.iterdir():
        if entry.name != ".git":
            (work / entry.name).symlink_to(entry)
    script = "set -euo pipefail\n" + "\n".join(runnable_blocks(page))
    env = {
        **os.environ,
        "MLPATTERNS_HOME": str(tmp_path / "home"),
        "COLUMNS": "80",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, f"{page.name}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
