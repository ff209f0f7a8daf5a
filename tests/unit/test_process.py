"""How many CPUs a server counts as its own: affinity mask and cgroup CPU quota."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpatterns.process import cpus_in_quota, usable_cpus

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [
        ("max 100000\n", None),  # no limit
        ("100000 100000\n", 1),
        ("200000 100000\n", 2),
        ("50000 100000\n", 1),  # half a CPU still needs one thread
        ("150000 100000\n", 2),  # a fraction rounds up
        ("", None),
        ("garbage", None),
        ("0 100000", None),
    ],
)
def test_a_cgroup_quota_in_whole_cpus(cpu_max: str, cpus: int | None) -> None:
    assert cpus_in_quota(cpu_max) == cpus


def test_the_quota_caps_the_cores_the_process_may_run_on(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path) == cores  # no cpu.max file: the cores alone
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(tmp_path) == cores
    (tmp_path / "cpu.max").write_text(f"{(cores + 4) * 100000} 100000\n")
    assert usable_cpus(tmp_path) == cores  # a quota above the cores grants no more


def test_a_process_pinned_to_one_core_counts_one() -> None:
    # the serving benchmark pins each server to one core: onnxruntime must not start
    # a second thread there (os.cpu_count() still counts the machine's cores)
    code = "from mlpatterns.process import usable_cpus; print(usable_cpus())"
    pinned = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert pinned.stdout.strip() == "1"
