"""The data cache: a request that names entities (`{"ids": ["a", "b"]}`) gets their
features from a feature source through an in-process cache (cachetools' TTLCache:
at most `max_entries` rows, each for `ttl` seconds, least recently used out).

Sources, each reading the model's features by name for a batch of ids:
- `SqliteFeatures`: a table of a SQLite file, opened read-only;
- `ParquetFeatures`: a Parquet file, read with a filter on the id column;
- `RedisFeatures`: a hash per entity at `<prefix><id>`, one field per feature.

A source is read off the event loop, with a deadline; an id it does not hold is a
404 that names it, a feature it holds empty a 422, a source that fails or stalls a
503. Lookups are counted by result (hit or miss)."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis
from cachetools import TTLCache

from mlpatterns.logsetup import request_fields
from mlpatterns.serving.inputs import AnswerError, ClientError, Rows, plain_numbers

__all__ = [
    "MAX_IDS",
    "SOURCE_TIMEOUT",
    "DataCache",
    "FeatureSource",
    "FeatureSourceError",
    "ParquetFeatures",
    "RedisFeatures",
    "SourceSpec",
    "SqliteFeatures",
    "entity_ids",
    "parse_source",
]

log = logging.getLogger("mlpatterns.serving")
MAX_IDS = 1000  # entities in one request
SOURCE_TIMEOUT = 2.0  # seconds a source may take for one request's misses
_ID = re.compile(r"[A-Za-z0-9._:@/-]{1,128}")
Values = tuple[float | None, ...]


class FeatureSourceError(RuntimeError):
    """A source that cannot serve the model's features (missing columns, no file)."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # sqlite, parquet or redis
    path: str  # the file; for redis, the key prefix
    table: str = ""
    id_column: str = "id"


def parse_source(text: str) -> SourceSpec:
    """`sqlite:PATH?table=T&id=COLUMN`, `parquet:PATH?id=COLUMN` or `redis:PREFIX`
    (`id` defaults to "id"); FeatureSourceError says what is wrong."""
    kind, _, rest = text.partition(":")
    path, _, query = rest.partition("?")
    options = dict(urllib.parse.parse_qsl(query))
    unknown = set(options) - {"table", "id"}
    if kind not in ("sqlite", "parquet", "redis") or not path or unknown:
        raise FeatureSourceError(
            f"{text!r} is not a feature source: sqlite:PATH?table=T&id=COLUMN, "
            "parquet:PATH?id=COLUMN or redis:PREFIX"
        )
    if kind == "sqlite" and not options.get("table"):
        raise FeatureSourceError(f"{text!r}: a SQLite source needs ?table=NAME")
    return SourceSpec(kind, path, options.get("table", ""), options.get("id", "id"))


class FeatureSource(Protocol):
    def rows(self, ids: Sequence[str]) -> dict[str, Values]:
        """The features of each id the source holds, in the model's order."""
        ...

    def close(self) -> None: ...


def entity_ids(value: Any) -> list[str]:
    """A request's `ids`, checked: 1 to MAX_IDS strings (or integers) of 1 to 128 of
    `[A-Za-z0-9._:@/-]`."""
    if not isinstance(value, list) or not value:
        raise ClientError(422, 'ids must be a non-empty list of entity ids, e.g. {"ids": ["42"]}')
    if len(value) > MAX_IDS:
        raise ClientError(413, f"ids has {len(value)} entities; send at most {MAX_IDS} at once")
    found = []
    for index, item in enumerate(value):
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(text, str) or _ID.fullmatch(text) is None:
            raise ClientError(
                422,
                f"ids[{index}] is {item!r}: an id is 1 to 128 of A-Z, a-z, 0-9, '.', '_', "
                "':', '@', '/', '-'",
            )
        found.append(text)
    return found


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteFeatures:
    def __init__(self, path: Path, table: str, id_column: str, names: Sequence[str]) -> None:
        if not path.is_file():
            raise FeatureSourceError(f"no SQLite file at {path}")
        self._db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        self._lock = threading.Lock()
        columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({_quoted(table)})")}
        missing = [name for name in (id_column, *names) if name not in columns]
        if missing:
            raise FeatureSourceError(
                f"table {table!r} of {path} has no column {', '.join(missing)} "
                f"(it has: {', '.join(sorted(columns)) or 'no such table'})"
            )
        selected = ", ".join(_quoted(n) for n in (id_column, *names))
        # names checked against the table's own columns above, and quoted; ids are parameters
        where = _quoted(id_column)
        self._query = f"SELECT {selected} FROM {_quoted(table)} WHERE {where} IN "  # noqa: S608

    def rows(self, ids: Sequence[str]) -> dict[str, Values]:
        marks = ", ".join("?" * len(ids))
        with self._lock:
            found = self._db.execute(f"{self._query}({marks})", list(ids)).fetchall()
        return {str(row[0]): tuple(row[1:]) for row in found}

    def close(self) -> None:
        self._db.close()


class ParquetFeatures:
    def __init__(self, path: Path, id_column: str, names: Sequence[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not path.is_file():
            raise FeatureSourceError(f"no Parquet file at {path}")
        schema = pq.read_schema(path)
        missing = [name for name in (id_column, *names) if name not in schema.names]
        if missing:
            raise FeatureSourceError(
                f"{path} has no column {', '.join(missing)} (it has: {', '.join(schema.names)})"
            )
        self._path, self._id, self._names = path, id_column, list(names)
        self._numeric_ids = pa.types.is_integer(schema.field(id_column).type)

    def rows(self, ids: Sequence[str]) -> dict[str, Values]:
        import pyarrow.parquet as pq

        wanted: list[Any] = [int(i) for i in ids if i.isdigit()] if self._numeric_ids else list(ids)
        if not wanted:
            return {}
        table = pq.read_table(
            self._path, columns=[self._id, *self._names], filters=[(self._id, "in", wanted)]
        )
        columns = [table.column(name).to_pylist() for name in (self._id, *self._names)]
        return {str(row[0]): tuple(row[1:]) for row in zip(*columns, strict=True)}

    def close(self) -> None:
        pass


class RedisFeatures:
    def __init__(self, client: redis.Redis, prefix: str, names: Sequence[str]) -> None:
        self._redis, self._prefix, self._names = client, prefix, list(names)

    def rows(self, ids: Sequence[str]) -> dict[str, Values]:
        with self._redis.pipeline(transaction=False) as pipe:
            for entity in ids:
                pipe.hmget(f"{self._prefix}{entity}", self._names)
            answers = pipe.execute()
        found = {}
        for entity, values in zip(ids, answers, strict=True):
            if any(value is not None for value in values):
                found[entity] = tuple(None if v is None else float(v) for v in values)
        return found

    def close(self) -> None:
        self._redis.close()


class DataCache:
    def __init__(
        self,
        source: FeatureSource,
        names: Sequence[str],
        max_entries: int,
        ttl: float,
        count: Callable[[bool, int], None],
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self._names, self._count = source, list(names), count
        self._rows: TTLCache[str, Values] = TTLCache(max_entries, ttl, timer=timer)

    async def rows(self, ids: list[str], request_id: str) -> Rows:
        """The features of `ids`, in order, as the model's input rows."""
        cached = self._rows
        found: dict[str, Values] = {}
        missing = []
        for entity in dict.fromkeys(ids):
            values = cached.get(entity)
            if values is None:
                missing.append(entity)
            else:
                found[entity] = values
        self._count(True, len(found))
        if missing:
            self._count(False, len(missing))
            read = await self._read(missing, request_id)
            for entity, values in read.items():
                cached[entity] = values
            found.update(read)
        absent = [entity for entity in ids if entity not in found]
        if absent:
            shown = ", ".join(repr(a) for a in absent[:10]) + (" ..." if len(absent) > 10 else "")
            raise ClientError(404, f"no features for {len(absent)} entities: {shown}")
        features: list[float] = []
        for entity in ids:
            row = found[entity]
            if any(value is None for value in row):
                names = zip(self._names, row, strict=True)
                empty = [name for name, value in names if value is None]
                raise ClientError(422, f"entity {entity!r} has no value for {', '.join(empty)}")
            features.extend(float(value) for value in row if value is not None)
        if not plain_numbers(features):
            raise ClientError(422, "the feature source holds a value that is not a finite number")
        return Rows(features, len(self._names))

    async def _read(self, ids: list[str], request_id: str) -> dict[str, Values]:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.source.rows, ids), timeout=SOURCE_TIMEOUT
            )
        except Exception as error:
            log.warning(
                "request %s: the feature source failed: %r",
                request_id,
                error,
                extra=request_fields(request_id),
            )
            raise AnswerError(
                503,
                f"the feature source is unavailable; try again (request id {request_id})",
                retry_after=1,
            ) from None

    def close(self) -> None:
        self.source.close()
