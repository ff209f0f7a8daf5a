"""Files written whole or not at all, for readers that may look at any moment: the
gateway reloading a ModelService file, `traffic set` reading the embedded state, a
registry reader fetching an artifact."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["read_if_present", "write_atomically", "write_text_atomically"]


def write_atomically(
    path: Path, write: Callable[[BinaryIO], object], *, durable: bool = True
) -> None:
    """`write` fills a new file beside `path`, which then takes its place in one rename
    (atomic on POSIX within a filesystem): a reader finds the old content or the new,
    never a part. Each call has a temporary of its own, so two writers at once cannot
    mix their bytes; the last rename wins. `durable`: synced before the rename, so that
    a crash cannot leave the name pointing at content not yet on disk (a file rewritten
    several times a second can do without)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with contextlib.suppress(FileNotFoundError):  # a file replaced keeps its mode
            os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))  # (a new one: owner only)
        with os.fdopen(fd, "wb") as sink:
            write(sink)
            if durable:
                sink.flush()
                os.fsync(sink.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_text_atomically(path: Path, text: str, *, durable: bool = True) -> None:
    write_atomically(path, lambda sink: sink.write(text.encode()), durable=durable)


def read_if_present(path: Path | None) -> bytes:
    """The file's bytes; none when there is no path or no file yet (a state file its
    writer has not written), or it cannot be read."""
    if path is None:
        return b""
    try:
        return path.read_bytes()
    except OSError:
        return b""
