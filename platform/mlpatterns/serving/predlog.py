"""The prediction log: one JSON record per prediction, written off the request path.

Requests put records on a bounded queue and never wait: when the queue is full the
record is dropped and counted. A background thread writes the queue in batches to
a sink (JSON lines in rotated files, or objects in S3). `close` drains and flushes
everything, which a server calls on SIGTERM so that no record is lost on a stop.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from mlpatterns.registry.store import ArtifactStore, StoreError


class Sink(Protocol):
    def write(self, lines: list[bytes]) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """JSON lines appended to `path`; at `max_bytes` it becomes `path.1` (and so on)."""

    def __init__(self, path: Path, max_bytes: int = 64 << 20, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")

    def write(self, lines: list[bytes]) -> None:
        self._file.write(b"".join(lines))
        self._file.flush()
        if self._file.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("ab")

    def close(self) -> None:
        self._file.close()


class StoreSink:
    """Each batch as one JSON-lines object under `prefix/<date>/` in an artifact store."""

    def __init__(self, store: ArtifactStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def write(self, lines: list[bytes]) -> None:
        now = datetime.now(UTC)
        key = f"{self.prefix}/{now:%Y-%m-%d}/{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.jsonl"
        self.store.put(key, b"".join(lines))

    def close(self) -> None:
        return


def record(
    *,
    request_id: str,
    service: str,
    version: str,
    inputs: Any,
    outputs: Any,
    latency: float,
    variant: str = "",
    shadow: bool = False,
) -> dict[str, Any]:
    """`version` is the model's; `variant` the ModelService version that served it;
    `shadow` marks a mirrored copy whose answer no client saw."""
    return {
        "request_id": request_id,
        "service": service,
        "version": version,
        "variant": variant,
        "shadow": shadow,
        "input": inputs,
        "output": outputs,
        "latency_seconds": round(latency, 6),
        "timestamp": datetime.now(UTC).isoformat(),
    }


class PredictionLog:
    def __init__(
        self,
        sink: Sink,
        *,
        capacity: int = 10_000,
        batch_size: int = 512,
        flush_interval: float = 0.5,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        self._sink = sink
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=capacity)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._on_drop = on_drop
        self._stopping = threading.Event()
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, entry: dict[str, Any], *, wait: bool = False) -> bool:
        """Queue a record; False (and counted) when the queue is full. Servers never wait;
        a batch job, which must not lose records, waits for room (`wait=True`)."""
        line = orjson.dumps(entry, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        try:
            self._queue.put(line, block=wait)
        except queue.Full:
            self.dropped += 1
            self._on_drop()
            return False
        return True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def _drain(self, first: bytes | None) -> list[bytes]:
        batch = [first] if first is not None else []
        while len(batch) < self._batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not (self._stopping.is_set() and self._queue.empty()):
            try:
                first: bytes | None = self._queue.get(timeout=self._flush_interval)
            except queue.Empty:
                first = None
            batch = self._drain(first)
            if batch:
                self._write(batch)

    def _write(self, batch: list[bytes]) -> None:
        for attempt in range(3):  # a sink's passing fault (S3 hiccup) is retried
            try:
                self._sink.write(batch)
                self.written += len(batch)
                return
            except (OSError, StoreError):
                time.sleep(0.2 * (attempt + 1))
        self.dropped += len(batch)
        for _ in batch:
            self._on_drop()

    def close(self, timeout: float = 30) -> None:
        """Write everything queued, then close the sink."""
        self._stopping.set()
        self._thread.join(timeout)
        self._sink.close()
