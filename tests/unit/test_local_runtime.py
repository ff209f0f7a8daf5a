"""The embedded mode's state file, rewritten while `traffic set` reads it."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mlpatterns.local.runtime import Embedded, NotRunningError, read_state

pytestmark = pytest.mark.unit


def test_the_state_file_is_never_read_half_written(tmp_path: Path) -> None:
    """`up` rewrites it every 0.2 s; written in place, a reader could find it empty (in
    this loop, more than half of the reads did)."""
    plan = SimpleNamespace(service="s", gateway_url="http://127.0.0.1:1", upstreams={})
    running = Embedded(
        cast(Any, plan), cast(Any, SimpleNamespace(processes=[])), Path("s.yaml"), tmp_path
    )
    running.write_state()
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            running.write_state()

    writer = threading.Thread(target=rewrite)
    writer.start()
    failed = 0
    try:
        for _ in range(2_000):
            try:
                read_state(tmp_path, "s")
            except NotRunningError:
                failed += 1
    finally:
        stop.set()
        writer.join()
    assert failed == 0
