"""Artifact stores: one interface, a local folder and S3/MinIO behind it.

Keys are `/`-separated paths. Every write is atomic: a reader sees the old object
or the new one, never half of either. `put_if` is the one compare-and-swap the
registry needs (alias moves): it writes only when the object is still at the
revision the caller read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from mlpatterns.files import write_atomically

__all__ = [
    "ArtifactStore",
    "Blob",
    "ConflictError",
    "LocalStore",
    "NotFoundError",
    "StoreError",
    "check_key",
    "digest",
]


class StoreError(Exception):
    """A store operation failed; the message says which key and why."""


class NotFoundError(StoreError, KeyError):
    """The key does not exist."""

    def __str__(self) -> str:  # the message as written: KeyError would quote it
        return str(self.args[0]) if self.args else ""


class ConflictError(StoreError):
    """A conditional write lost: someone else changed the object first."""


@dataclass(frozen=True)
class Blob:
    data: bytes
    revision: str  # opaque: what `put_if` compares against


class ArtifactStore(Protocol):
    """Where the registry keeps artifacts and metadata."""

    def describe(self) -> str: ...

    def put(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, source: Path) -> None: ...

    def get(self, key: str) -> Blob: ...

    def get_file(self, key: str, destination: Path) -> None: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]: ...

    def put_if(self, key: str, data: bytes, revision: str | None) -> None:
        """Write `data` when the object's revision is `revision` (None: it must not exist)."""
        ...


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root (`..`, absolute paths, empty parts)."""
    parts = key.split("/")  # literally: PurePosixPath would fold "a//b" and "./a" away
    if not key or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"invalid store key {key!r}: use a relative path without '..'")
    return key


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStore:
    """A folder on disk (the embedded default, under `MLPATTERNS_HOME`)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return f"local folder {self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_atomically(self, path: Path, write: Callable[[BinaryIO], object]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, write)

    def put(self, key: str, data: bytes) -> None:
        self._write_atomically(self._path(key), lambda sink: sink.write(data))

    def put_file(self, key: str, source: Path) -> None:
        def copy(sink: BinaryIO) -> None:
            with source.open("rb") as origin:
                shutil.copyfileobj(origin, sink, 1 << 20)

        self._write_atomically(self._path(key), copy)

    def get(self, key: str) -> Blob:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{key} not found in {self.describe()}") from None
        return Blob(data, digest(data))

    def get_file(self, key: str, destination: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise NotFoundError(f"{key} not found in {self.describe()}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        LocalStore(destination.parent).put_file(destination.name, source)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        lock = self._path(key).with_name(f".{PurePosixPath(key).name}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def put_if(self, key: str, data: bytes, revision: str | None) -> None:
        with self._locked(key):
            current = self.get(key).revision if self.exists(key) else None
            if current != revision:
                raise ConflictError(
                    f"{key} changed since it was read (expected revision {revision}, "
                    f"found {current}); read it again and retry"
                )
            self.put(key, data)
