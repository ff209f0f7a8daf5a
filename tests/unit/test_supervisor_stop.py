"""The embedded mode's stop: bounded whatever its processes do with SIGTERM."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from mlpatterns.local.plan import ProcessSpec
from mlpatterns.local.supervisor import Supervisor

pytestmark = pytest.mark.unit

DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
POLITE = "import time; time.sleep(60)"


def test_stop_kills_what_ignores_sigterm_within_twice_the_grace(tmp_path: Path) -> None:
    specs = tuple(
        ProcessSpec(name, (sys.executable, "-c", code), None)
        for name, code in (("server-a", DEAF), ("server-b", DEAF), ("gateway", DEAF))
    )
    said: list[str] = []
    supervisor = Supervisor(specs, tmp_path, say=said.append)
    supervisor.start()
    time.sleep(0.5)  # the handlers are installed
    started = time.monotonic()
    codes = supervisor.stop(grace=1.0)
    assert time.monotonic() - started < 2 + 1  # the gateway's second, then the others' one
    assert all(code is not None and code < 0 for code in codes.values())
    assert sorted(said) == [f"{name} did not stop in 1 s: killed" for name in sorted(codes)]


def test_stop_waits_for_what_stops_on_sigterm(tmp_path: Path) -> None:
    specs = tuple(ProcessSpec(n, (sys.executable, "-c", POLITE), None) for n in ("a", "b"))
    supervisor = Supervisor(specs, tmp_path, say=lambda _: None)
    supervisor.start()
    assert set(supervisor.stop(grace=5.0).values()) == {-15}
