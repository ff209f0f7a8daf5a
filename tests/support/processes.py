"""Starting, probing and stopping the real processes tests run, on loopback only."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path


class NotReadyError(RuntimeError):
    """A process did not become ready in time; the message names it and its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(
    what: str, ready: Callable[[], bool], timeout: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    where = f"; see {log}" if log else ""
    raise NotReadyError(f"{what} not ready after {timeout:.0f}s{where}")


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, ssl.SSLError):
        return False


def running(pid: int) -> bool:
    """Whether `pid` is a live process: a zombie (dead, not yet reaped) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def terminate(name: str, pid: int, grace: float = 10) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child and already dead
    if not running(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            # reap it when it is our child; otherwise just watch it go
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            if not running(pid):
                return
        time.sleep(0.1)
    print(f"{name} (pid {pid}) ignored SIGTERM for {grace:.0f}s; killing it", file=sys.stderr)
    os.kill(pid, signal.SIGKILL)


def spawn(argv: Sequence[str], log: Path, cwd: Path, tied_to_parent: bool = False) -> int:
    """Start a long-running component in its own session, output appended to `log`;
    with `tied_to_parent` it is killed when this process dies (test fixtures)."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            list(argv),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent if tied_to_parent else None,
        )
    return process.pid


def die_with_parent() -> None:
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
