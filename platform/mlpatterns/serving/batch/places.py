"""Where a batch job reads and writes: a path on this machine, or `s3://bucket/key` in
the object store the settings name (`MLPATTERNS_S3_*`, the registry's), both through
pyarrow's filesystems so that the columnar path reads and writes either alike."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow.fs as pafs

from mlpatterns.serving.batch.base import S3, BatchInputError
from mlpatterns.settings import Settings, load_settings

__all__ = ["Place", "place"]

DEFAULT_REGION = "us-east-1"  # named, so that the SDK never asks the network for one


@dataclass(frozen=True)
class Place:
    """A file or folder: its filesystem, its path there, and its name as the user gave it."""

    filesystem: pafs.FileSystem
    path: str
    shown: str

    @property
    def remote(self) -> bool:
        return not isinstance(self.filesystem, pafs.LocalFileSystem)

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.path).suffix.lower()

    def is_file(self) -> bool:
        return bool(self.filesystem.get_file_info(self.path).type == pafs.FileType.File)

    def child(self, name: str) -> Place:
        return Place(self.filesystem, f"{self.path}/{name}", f"{self.shown}/{name}")

    def children(self, pattern: str) -> list[Place]:
        """The files right in this folder whose names match `pattern`, sorted by name."""
        found = self.filesystem.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        names = sorted(
            info.base_name
            for info in found
            if info.type == pafs.FileType.File and fnmatch.fnmatchcase(info.base_name, pattern)
        )
        return [self.child(name) for name in names]


def place(location: str | Path, settings: Settings | None = None) -> Place:
    """A local path, or `s3://bucket/key` in the settings' object store."""
    text = str(location)
    if not text.startswith(S3):
        return Place(pafs.LocalFileSystem(), str(Path(text).absolute()), text)
    bucket, _, key = text.removeprefix(S3).partition("/")
    if not bucket or not key:
        raise BatchInputError(f"{text}: an object is named s3://<bucket>/<key>")
    return Place(_object_store(settings or load_settings(), text), f"{bucket}/{key}", text)


def _object_store(settings: Settings, shown: str) -> pafs.S3FileSystem:
    if not (settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key):
        raise BatchInputError(
            f"{shown}: reading or writing s3:// needs the object store's address and keys: "
            "set MLPATTERNS_S3_ENDPOINT, MLPATTERNS_S3_ACCESS_KEY and MLPATTERNS_S3_SECRET_KEY"
        )
    return pafs.S3FileSystem(
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        endpoint_override=settings.s3_endpoint,
        scheme="https" if settings.s3_secure else "http",
        region=settings.s3_region or DEFAULT_REGION,
    )
