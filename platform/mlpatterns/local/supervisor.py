"""Runs a plan's processes and keeps them running: each writes its output to its own
log file; one that exits is started again after a backoff that doubles (reset once
it has stayed up a while); a scheduled job runs at start and at each matching
minute, never twice at once (a CronJob's concurrencyPolicy Forbid). `stop` sends
SIGTERM to the gateway first, so that it stops taking requests while the servers
finish theirs, then to the rest at once, and SIGKILL to any that outlive the grace
period."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from mlpatterns.local.cron import Schedule
from mlpatterns.local.plan import ProcessSpec

__all__ = ["STABLE_SECONDS", "Running", "StartError", "Supervisor"]

STABLE_SECONDS = 30.0


class StartError(RuntimeError):
    pass


@dataclass
class Running:
    spec: ProcessSpec
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.5
    next_start: float = 0.0  # monotonic time of the next (re)start; 0: not scheduled
    schedule: Schedule | None = None
    next_run: datetime | None = None
    replacing: bool = False  # stopped on purpose: start it again at once, quietly
    answered: bool = False  # its readiness probe answered since it was (re)started
    retired: bool = False  # stopped for good: its version has no replicas any more

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except OSError:
        return False


class Supervisor:
    def __init__(
        self,
        specs: tuple[ProcessSpec, ...],
        log_folder: Path,
        *,
        env: dict[str, str] | None = None,
        say: Callable[[str], None] = print,
        max_backoff: float = 30.0,
    ) -> None:
        log_folder.mkdir(parents=True, exist_ok=True)
        self.processes = [Running(s, log_folder / f"{s.name}.log") for s in specs]
        self._env = {**os.environ, **(env or {})}
        self._say = say
        self._max_backoff = max_backoff
        for running in self.processes:
            if running.spec.schedule is not None:
                running.schedule = Schedule.parse(running.spec.schedule)

    def _spawn(self, running: Running) -> None:
        if running.log is None:
            running.log = running.log_path.open("ab")
        running.process = subprocess.Popen(
            running.spec.argv,
            stdout=running.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**self._env, **running.spec.env},
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops them in order
        )
        running.started_at = time.monotonic()
        running.answered = False

    def start(self, timeout: float = 120.0) -> None:
        """Start every process and wait until each is ready; StartError names the one
        that is not, with the end of its log."""
        for running in self.processes:
            self._spawn(running)
            if running.schedule is not None:
                running.next_run = running.schedule.next_after(datetime.now(UTC))
        deadline = time.monotonic() + timeout
        for running in self.processes:
            url = running.spec.ready_url
            while url is not None and not _answers(url):
                if not running.alive or time.monotonic() > deadline:
                    reason = "exited" if not running.alive else f"not ready in {timeout:g} s"
                    raise StartError(f"{running.spec.name} {reason}:\n{self.tail(running)}")
                time.sleep(0.1)

    def tail(self, running: Running, lines: int = 15) -> str:
        try:
            text = running.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def poll(self, now: float | None = None) -> None:
        """One round of supervision: restart what died (after its backoff), start the
        scheduled jobs that are due."""
        now = time.monotonic() if now is None else now
        for running in self.processes:
            if running.schedule is not None:
                self._poll_job(running)
                continue
            if running.retired:
                if running.process is not None:
                    running.process.poll()  # reaped, not restarted
                continue
            if running.alive:
                if now - running.started_at > STABLE_SECONDS:
                    running.backoff = 0.5
                continue
            if running.replacing:
                running.replacing = False
                self._spawn(running)
                continue
            if running.next_start == 0.0:
                code = running.process.returncode if running.process else None
                running.next_start = now + running.backoff
                self._say(
                    f"{running.spec.name} exited ({code}); restarting in {running.backoff:g} s "
                    f"(log: {running.log_path})"
                )
                running.backoff = min(running.backoff * 2, self._max_backoff)
            elif now >= running.next_start:
                running.next_start = 0.0
                running.restarts += 1
                self._spawn(running)

    def _poll_job(self, running: Running) -> None:
        assert running.schedule is not None
        assert running.next_run is not None
        if running.process is not None and running.process.poll() is not None:
            code = running.process.returncode
            self._say(f"{running.spec.name} finished ({'ok' if code == 0 else f'exit {code}'})")
            running.process = None
        now = datetime.now(UTC)
        if now >= running.next_run:
            running.next_run = running.schedule.next_after(now)
            if running.alive:
                self._say(f"{running.spec.name} is still running; this run is skipped")
            else:
                self._spawn(running)

    def restart(self, version: str) -> list[str]:
        """Stop the processes that serve `version` (SIGTERM: they finish what they
        answer); the next poll starts them again at once. Their names."""
        names = []
        for running in self.processes:
            if running.spec.version == version and running.schedule is None and running.alive:
                assert running.process is not None
                running.replacing = True
                running.process.send_signal(signal.SIGTERM)
                names.append(running.spec.name)
        return names

    def retire(self, version: str) -> list[str]:
        """Stop the processes of `version` for good (SIGTERM; they finish what they
        answer): a rollout's previous version once its time for a rollback is over."""
        names = []
        for running in self.processes:
            if running.spec.version == version and running.schedule is None:
                running.retired = True
                if running.alive:
                    assert running.process is not None
                    running.process.send_signal(signal.SIGTERM)
                names.append(running.spec.name)
        return names

    def ready(self, version: str) -> bool:
        """Whether every process of `version` runs and has answered its readiness probe
        since it was (re)started: one that hangs later stays ready, and its failures
        count as its own."""
        for running in self.processes:
            if running.spec.version != version or running.schedule is not None:
                continue
            if not running.alive:
                return False
            if not running.answered:
                url = running.spec.ready_url
                running.answered = url is None or _answers(url, timeout=0.5)
                if not running.answered:
                    return False
        return True

    def stop(self, grace: float = 30.0) -> dict[str, int | None]:
        """SIGTERM the last started (the gateway) and wait for it, then the others all
        at once; whatever still runs `grace` seconds after its SIGTERM is killed. The
        whole stop takes at most twice `grace`."""
        alive = [r for r in reversed(self.processes) if r.alive]
        for group in (alive[:1], alive[1:]):
            for running in group:
                assert running.process is not None
                running.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for running in group:
                assert running.process is not None
                try:
                    running.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._say(f"{running.spec.name} did not stop in {grace:g} s: killed")
                    running.process.kill()
                    running.process.wait()
        for running in self.processes:
            if running.log is not None:
                running.log.close()
        return {r.spec.name: r.process.returncode if r.process else None for r in self.processes}
