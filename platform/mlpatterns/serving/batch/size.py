"""How many rows a batch input has, read cheaply before the job starts, so that its
progress can show a total, a rate and the time left."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mlpatterns.serving.batch.base import S3

__all__ = ["count_rows"]

_BLOCK = 1 << 20


def count_rows(source: str) -> int | None:
    """The rows of `source`: a Parquet file's from its footer, a SQLite table's by
    COUNT(*), a CSV file's as its lines after the header (a quoted value that spans
    lines counts twice; the total is for a progress bar). None when it cannot tell, and
    for an object in a store (s3://), which it would have to download to count."""
    if source.startswith(S3):
        return None
    try:
        if source.lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(source).metadata.num_rows)
        if source.lower().endswith(".csv"):
            return _csv_lines(Path(source))
        if ":" in source:
            path, table = source.rsplit(":", 1)
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                counted = db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()  # noqa: S608
            return int(counted[0])
    except (OSError, sqlite3.Error, ValueError, ImportError):
        return None
    return None


def _csv_lines(path: Path) -> int:
    lines, last = 0, b"\n"
    with path.open("rb") as file:
        while block := file.read(_BLOCK):
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":  # a last line without its newline
        lines += 1
    return max(0, lines - 1)
