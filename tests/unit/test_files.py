"""Atomic file writes: whole or not at all, mode kept, nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import pytest

from mlpatterns.files import write_atomically, write_text_atomically

pytestmark = pytest.mark.unit


def test_a_replaced_file_keeps_its_mode_and_no_temporary_is_left(tmp_path: Path) -> None:
    path = tmp_path / "iris.yaml"
    path.write_text("old")
    path.chmod(0o640)
    write_text_atomically(path, "new")
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["iris.yaml"]


def test_a_new_file_is_the_owners_only(tmp_path: Path) -> None:
    write_text_atomically(tmp_path / "state.json", "{}", durable=False)
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_the_old_content_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"whole")

    def fails_midway(sink: BinaryIO) -> None:
        sink.write(b"ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fails_midway)
    assert path.read_bytes() == b"whole"
    assert os.listdir(tmp_path) == ["model.onnx"]
