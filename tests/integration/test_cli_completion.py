"""`mlpatterns completion bash|zsh|fish`: the script, and the CLI answering the
requests the script makes, as a shell would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_call_the_cli_back(shell: str) -> None:
    script = subprocess.run(
        [MLPATTERNS, "completion", shell], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "_MLPATTERNS_COMPLETE" in script


def test_the_cli_answers_a_completion_request() -> None:
    env = {
        **os.environ,
        "_MLPATTERNS_COMPLETE": "complete_bash",
        "COMP_WORDS": "mlpatterns report ab x -o ",
        "COMP_CWORD": "5",
    }
    answer = subprocess.run([MLPATTERNS], env=env, capture_output=True, text=True, timeout=60)
    assert answer.stdout.split() == ["table", "json", "yaml"]
