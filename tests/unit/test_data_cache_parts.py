"""The data cache's parts: the ids a request may name, the source a server is given,
and the cache between them (bounded, kept for its time to live, read once per miss),
against a source that counts what it was asked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mlpatterns.api.modelservice import ModelService
from mlpatterns.operator.policy import AdmissionPolicy, problems
from mlpatterns.serving.features import (
    DataCache,
    FeatureSourceError,
    SourceSpec,
    entity_ids,
    parse_source,
)
from mlpatterns.serving.inputs import ClientError
from tests.support.services import model_service

pytestmark = pytest.mark.unit
NAMES = ("a", "b")


class CountingSource:
    """A feature source in memory, recording each batch it was asked for."""

    def __init__(self, rows: dict[str, tuple[float | None, ...]]) -> None:
        self.table = rows
        self.asked: list[list[str]] = []

    def rows(self, ids: Sequence[str]) -> dict[str, tuple[float | None, ...]]:
        self.asked.append(list(ids))
        return {i: self.table[i] for i in ids if i in self.table}

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cache_of(source: CountingSource, clock: Clock, entries: int = 10) -> DataCache:
    counted: list[tuple[bool, int]] = []
    return DataCache(source, NAMES, entries, 60, lambda hit, n: counted.append((hit, n)), clock)


def test_misses_are_read_once_in_one_batch_and_kept_for_their_time_to_live() -> None:
    source, clock = CountingSource({"x": (1.0, 2.0), "y": (3.0, 4.0)}), Clock()
    cache = cache_of(source, clock)

    first = asyncio.run(cache.rows(["x", "y", "x"], "r1"))
    again = asyncio.run(cache.rows(["y", "x"], "r2"))
    source.table["x"] = (9.0, 9.0)
    clock.now = 61  # past the time to live: read again, the new values
    later = asyncio.run(cache.rows(["x"], "r3"))

    assert first.nested() == [[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]
    assert again.nested() == [[3.0, 4.0], [1.0, 2.0]]
    assert later.nested() == [[9.0, 9.0]]
    assert source.asked == [["x", "y"], ["x"]]


def test_the_cache_holds_at_most_its_entries() -> None:
    source = CountingSource({str(i): (float(i), 0.0) for i in range(20)})
    cache = cache_of(source, Clock(), entries=5)
    asyncio.run(cache.rows([str(i) for i in range(20)], "r"))
    asyncio.run(cache.rows(["0"], "r"))
    assert source.asked[-1] == ["0"]  # pushed out long ago: read again


def test_unknown_and_empty_entities_are_refused_with_their_names() -> None:
    cache = cache_of(CountingSource({"x": (1.0, None), "inf": (float("inf"), 1.0)}), Clock())
    with pytest.raises(ClientError, match="no features for 1 entities: 'nope'") as unknown:
        asyncio.run(cache.rows(["nope"], "r"))
    with pytest.raises(ClientError, match="entity 'x' has no value for b") as empty:
        asyncio.run(cache.rows(["x"], "r"))
    with pytest.raises(ClientError, match="not a finite number"):
        asyncio.run(cache.rows(["inf"], "r"))
    assert (unknown.value.status, empty.value.status) == (404, 422)


@pytest.mark.parametrize(
    ("given", "status"),
    [([], 422), ("1", 422), ([True], 422), (["a b"], 422), (["x" * 129], 422),
     ([str(i) for i in range(1001)], 413)],
)  # fmt: skip
def test_ids_are_bounded_and_plain(given: object, status: int) -> None:
    with pytest.raises(ClientError) as refused:
        entity_ids(given)
    assert refused.value.status == status


def test_ids_may_be_integers_and_keep_their_order() -> None:
    assert entity_ids([3, "b:1", "x/y@z.w-_"]) == ["3", "b:1", "x/y@z.w-_"]


def test_sources_are_named_in_one_line() -> None:
    assert parse_source("sqlite:/d/f.db?table=t&id=key") == SourceSpec(
        "sqlite", "/d/f.db", "t", "key"
    )
    assert parse_source("parquet:f.parquet") == SourceSpec("parquet", "f.parquet", "", "id")
    assert parse_source("redis:features:iris:") == SourceSpec("redis", "features:iris:")
    for wrong in ("mysql:db", "sqlite:f.db", "parquet:", "parquet:f?idx=1"):
        with pytest.raises(FeatureSourceError):
            parse_source(wrong)


def test_a_cluster_takes_features_from_redis_only() -> None:
    def service(features: dict[str, object]) -> ModelService:
        version = {"name": "v1", "model": {"uri": "models:/iris@production"}}
        return model_service({"versions": [{**version, "features": features}]})

    local = service({"sqlite": {"path": "f.db", "table": "t"}})
    shared = service({"redis": {"keyPrefix": "f:"}})
    [refused] = problems(local, AdmissionPolicy())
    assert "features.sqlite reads a file" in refused
    assert problems(shared, AdmissionPolicy()) == []
