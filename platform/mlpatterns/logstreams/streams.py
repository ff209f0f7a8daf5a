"""Where each log stream is kept, for its writers and its readers.

A stream (predictions, gateway decisions, feedback) of a service is kept in one
`Place`, the same for every process of a runtime:

- `Folder`: the embedded mode's files, `MLPATTERNS_HOME/logs/<stream>/<service>/
  <version>[.<writer>].jsonl`, rotated at 64 MiB;
- `Bucket`: a cluster's object store (the registry's), one object per written
  batch, partitioned by service, version and hour: `logs/<stream>/<service>/
  <version>/<YYYY-MM-DD>/<HH>/<time>-<random>.jsonl`, so that no pod's log is lost
  with its emptyDir and a report can read every pod's records.

`place(settings)` is where a process writes and `mlpatterns report` reads by
default: the object store when one is configured, else the files. Reading skips and
counts a torn or foreign line, never fails on it: a report over a live log works.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mlpatterns.logstreams.writer import FileSink, RecordLog, Sink, StoreSink
from mlpatterns.registry.access import LOGS
from mlpatterns.registry.store import ArtifactStore
from mlpatterns.settings import Settings

__all__ = [
    "Bucket",
    "Folder",
    "Place",
    "Records",
    "Stream",
    "open_log",
    "place",
    "place_from",
    "prediction_record",
    "timestamp",
]


class Stream(enum.Enum):
    PREDICTIONS = "predictions"
    DECISIONS = "decisions"
    FEEDBACK = "feedback"


@dataclass
class Records:
    """A stream's records, and how many lines were skipped as torn or foreign."""

    items: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0

    def add_lines(self, lines: Iterable[bytes]) -> None:
        import orjson  # the serving extra's; this package's names need only the core

        for line in lines:
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.skipped += 1
                continue
            if isinstance(item, dict) and isinstance(item.get("request_id"), str):
                self.items.append(item)
            else:
                self.skipped += 1


class Place(Protocol):
    """Where a runtime keeps its log streams."""

    def sink(self, stream: Stream, service: str, version: str, writer: str) -> Sink: ...

    def read(self, stream: Stream, service: str, since: datetime | None = None) -> Records: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Folder:
    """JSON-lines files under `root` (the embedded mode's MLPATTERNS_HOME/logs)."""

    root: Path

    def sink(self, stream: Stream, service: str, version: str, writer: str) -> Sink:
        suffix = f".{writer}" if writer else ""
        return FileSink(self.root / stream.value / service / f"{version}{suffix}.jsonl")

    def read(self, stream: Stream, service: str, since: datetime | None = None) -> Records:
        folder = self.root / stream.value / service
        paths = sorted(p for p in folder.glob("*.jsonl*") if p.is_file())
        found = Records()
        for path in paths:
            with path.open("rb") as handle:
                found.add_lines(handle)
        return found

    def describe(self) -> str:
        return str(self.root)


@dataclass(frozen=True)
class Bucket:
    """One object per written batch in `store`, partitioned by hour."""

    store: ArtifactStore
    root: str = LOGS

    def sink(self, stream: Stream, service: str, version: str, writer: str) -> Sink:
        return StoreSink(self.store, f"{self.root}/{stream.value}/{service}/{version}")

    def read(self, stream: Stream, service: str, since: datetime | None = None) -> Records:
        keys = [
            key
            for key in self.store.list(f"{self.root}/{stream.value}/{service}/")
            if key.endswith(".jsonl") and not _before(key, since)
        ]
        found = Records()
        for key in keys:
            found.add_lines(self.store.get(key).data.splitlines())
        return found

    def describe(self) -> str:
        return f"{self.store.describe()}/{self.root}"


def _before(key: str, since: datetime | None) -> bool:
    """Whether an object's hour partition ended before `since` (so none of it counts)."""
    if since is None:
        return False
    parts = key.split("/")
    try:
        hour = datetime.strptime(f"{parts[-3]} {parts[-2]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except (IndexError, ValueError):
        return False  # not a partition this module wrote: read it
    return hour.timestamp() + 3600 <= since.timestamp()


def place(settings: Settings) -> Place:
    """Where this process writes and reads: the object store when one is configured."""
    if settings.uses_object_storage:
        from mlpatterns.registry.s3 import S3Store

        # no request to S3 here: an unreachable store must not keep a model from
        # serving; failed writes are retried, then counted as dropped records
        return Bucket(S3Store.from_settings(settings, create_bucket=False))
    return Folder(settings.home.resolve() / "logs")


def place_from(source: str, settings: Settings) -> Place:
    """A place named on the command line: `s3://BUCKET` (reached with the configured
    endpoint and credentials) or the folder of an embedded mode's logs."""
    if source.startswith("s3://"):
        from mlpatterns.registry.s3 import S3Store

        bucket, _, root = source.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"{source!r} names no bucket; write s3://BUCKET")
        if not settings.uses_object_storage:
            raise ValueError(
                f"{source} needs the object store's address: set MLPATTERNS_S3_ENDPOINT "
                "and its credentials (MLPATTERNS_S3_ACCESS_KEY, MLPATTERNS_S3_SECRET_KEY)"
            )
        store = S3Store.from_settings(settings.model_copy(update={"s3_bucket": bucket}),
                                      create_bucket=False)  # fmt: skip
        return Bucket(store, root.strip("/") or LOGS)
    return Folder(Path(source).expanduser().resolve())


def open_log(
    where: Place,
    stream: Stream,
    service: str,
    version: str = "",
    *,
    writer: str = "",
    on_drop: Callable[[], None] = lambda: None,
) -> RecordLog:
    """A buffered writer of `stream` for `service`'s `version` (the service's own name
    for a process that serves no ModelService version); `writer` tells apart processes
    that write the same version's file at once (an object store needs no such name)."""
    return RecordLog(where.sink(stream, service, version or service, writer), on_drop=on_drop)


def prediction_record(
    *,
    request_id: str,
    service: str,
    version: str,
    model: str,
    digest: str,
    inputs: Any,
    outputs: Any,
    latency: float,
    shadow: bool = False,
) -> dict[str, Any]:
    """One line of the predictions stream. `version` is the ModelService version that
    answered (empty outside one); `model` the model's own version and `digest` its
    file's sha256; `shadow` marks a
    mirrored copy whose answer no client saw."""
    return {
        "request_id": request_id,
        "service": service,
        "version": version,
        "model": model,
        "digest": digest,
        "shadow": shadow,
        "input": inputs,
        "output": outputs,
        "latency_seconds": round(latency, 6),
        "timestamp": timestamp(),
    }


_second: list[Any] = [-1, ""]  # the last whole second formatted, and its text


def timestamp() -> str:
    """Now in UTC as ISO 8601 with microseconds, as every record carries it: a record
    is written per request, so the part to the second is formatted once a second."""
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second[:] = [whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")]
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}+00:00"
