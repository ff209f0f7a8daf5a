"""Reading the embedded mode's JSON-lines logs (predictions, gateway decisions,
feedback) under `MLPATTERNS_HOME/logs`, rotated files included. A torn or foreign
line is skipped and counted, never fatal: a report over a live log must work."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class Records:
    items: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    files: list[Path] = field(default_factory=list)


def _lines(paths: Iterable[Path]) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as handle:
            yield from handle


def read_records(paths: Iterable[Path]) -> Records:
    result = Records(files=list(paths))
    for line in _lines(result.files):
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            result.skipped += 1
            continue
        if isinstance(item, dict) and isinstance(item.get("request_id"), str):
            result.items.append(item)
        else:
            result.skipped += 1
    return result


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []


def prediction_records(home: Path, service: str) -> Records:
    """Every version's prediction records of a ModelService run in the embedded mode."""
    return read_records(_files(home / "logs" / "predictions" / service, "*.jsonl*"))


def decision_records(home: Path, service: str) -> Records:
    return read_records(_files(home / "logs" / "gateway", f"{service}.jsonl*"))


def feedback_records(home: Path, service: str) -> Records:
    return read_records(_files(home / "logs" / "feedback", f"{service}.jsonl*"))
