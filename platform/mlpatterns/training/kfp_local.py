"""Run a training pipeline with kfp's local SubprocessRunner, in a child process.

kfp's local runner takes over the root logger and prints every task's output; the
child process keeps that out of the caller's terminal. Its log goes to a file under
`MLPATTERNS_HOME/kfp/logs/`, and the parent turns the task start and finish lines into
progress events.

    python -m mlpatterns.training.kfp_local PIPELINE JSON_ARGUMENTS PARALLELISM CACHING
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpatterns.settings import load_settings

__all__ = ["PipelineFailedError", "TaskEvent", "failure_excerpt", "parse_event", "run_pipeline"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_CACHED = re.compile(r"Task '?([\w.-]+)'? cache hit")
_EXCEPTION = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.*)$")
_KFP_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d+ - ")


@dataclass(frozen=True)
class TaskEvent:
    task: str
    status: str  # RUNNING, SUCCESS, FAILURE, or CACHED (a finished step reused)


class PipelineFailedError(RuntimeError):
    def __init__(self, message: str, log: Path) -> None:
        super().__init__(f"{message} (full log: {log})")
        self.log = log


def parse_event(line: str) -> TaskEvent | None:
    """A task start or finish in a line of kfp's local log, if the line is one."""
    plain = _ANSI.sub("", line)
    if cached := _CACHED.search(plain):
        return TaskEvent(cached.group(1), "CACHED")
    if finished := _FINISHED.search(plain):
        return TaskEvent(finished.group(1), finished.group(2))
    if started := _STARTED.search(plain):
        return TaskEvent(started.group(1), "RUNNING")
    return None


def failure_excerpt(log_text: str) -> str | None:
    """The last exception a task raised, with its message lines, from a kfp local log."""
    lines = [_ANSI.sub("", line) for line in log_text.splitlines()]
    for start in range(len(lines) - 1, -1, -1):
        match = _EXCEPTION.match(lines[start])
        if match and match.group(1) != "RuntimeError":
            excerpt = [f"{match.group(1)}: {match.group(2)}"]
            for line in lines[start + 1 :]:
                if _KFP_LINE.match(line) or not line.strip():
                    break
                excerpt.append(line.strip())
            return "\n".join(excerpt)
    return None


def run_pipeline(
    pipeline: str,
    arguments: dict[str, Any],
    *,
    parallelism: int = 4,
    caching: bool = True,
    on_event: Callable[[TaskEvent], None] = lambda event: None,
) -> str:
    """Run `batch_training`, `training_to_serving` or `parameter_search` locally; return
    its output (batch training's: the version registered)."""
    home = load_settings().home.resolve()
    logs = home / "kfp" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{pipeline}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    # the child writes its outcome to a file: kfp's output on stdout is no protocol
    result_path = log_path.with_suffix(".result.json")
    argv = [
        sys.executable,
        "-m",
        __name__,
        pipeline,
        json.dumps(arguments),
        str(parallelism),
        "1" if caching else "0",
        str(result_path),
    ]
    failed: list[str] = []
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**os.environ, "MLPATTERNS_HOME": str(home)},
        ) as child,
    ):
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            if event := parse_event(line):
                if event.status == "FAILURE":
                    failed.append(event.task)
                on_event(event)
    result = json.loads(result_path.read_text()) if result_path.exists() else None
    if child.returncode != 0 or result is None or "error" in result:
        reason = failure_excerpt(log_path.read_text()) or (result or {}).get("error", "failed")
        where = f" failed in task {failed[0]!r}" if failed else " failed"
        raise PipelineFailedError(f"{pipeline}{where}:\n{reason}\n", log_path)
    return str(result["output"])


def _child(
    pipeline: str, arguments: dict[str, Any], parallelism: int, caching: bool, result: Path
) -> int:
    import logging

    from kfp import local

    # kfp logs cache hits outside its own log context: without a handler they are lost
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")

    from pipelines.batch_training import batch_training
    from pipelines.parameter_search import make_parameter_search
    from pipelines.training_to_serving import training_to_serving

    home = load_settings().home.resolve()
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(home / "kfp" / "outputs"),
        enable_caching=caching,
    )
    pipelines = {"batch_training": batch_training, "training_to_serving": training_to_serving}
    pipelines["parameter_search"] = make_parameter_search(parallelism)
    try:
        task = pipelines[pipeline](**arguments)
        result.write_text(json.dumps({"output": task.output}))
        return 0
    except Exception as error:  # reported to the parent, which raises with the log
        result.write_text(json.dumps({"error": str(error).splitlines()[-1]}))
        return 1


if __name__ == "__main__":
    name, raw_arguments, parallel, cache, result_file = sys.argv[1:6]
    raise SystemExit(
        _child(name, json.loads(raw_arguments), int(parallel), cache == "1", Path(result_file))
    )
