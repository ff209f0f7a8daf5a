"""`mlpatterns up -f` as a subprocess, the way a user starts the embedded mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.processes import die_with_parent, free_port, wait_until

MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))


@dataclass
class Up:
    process: subprocess.Popen[str]
    url: str
    file: Path
    home: Path

    def state(self) -> dict[str, object]:
        name = yaml.safe_load(self.file.read_text())["metadata"]["name"]
        return json.loads((self.home / "run" / f"{name}.json").read_text())  # type: ignore[no-any-return]

    def mlpatterns(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MLPATTERNS, *args],
            env={**os.environ, "MLPATTERNS_HOME": str(self.home), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=60)
        return output


def start_up(home: Path, file: Path, *extra: str, cwd: Path | None = None) -> Up:
    port = free_port()
    process = subprocess.Popen(
        [MLPATTERNS, "up", "-f", str(file), "--port", str(port), *extra],
        env={**os.environ, "MLPATTERNS_HOME": str(home), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        preexec_fn=die_with_parent,
    )
    up = Up(process, f"http://127.0.0.1:{port}", file, home)
    name = yaml.safe_load(file.read_text())["metadata"]["name"]
    try:
        wait_until(
            "mlpatterns up",
            lambda: process.poll() is None and (home / "run" / f"{name}.json").exists(),
            120,
        )
    except Exception:
        process.kill()
        raise AssertionError(process.communicate()[0]) from None
    return up
