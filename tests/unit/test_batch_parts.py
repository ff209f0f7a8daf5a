"""The columnar batch path's pure parts: which rows to predict (first occurrences of
each id, minus those done, minus those without an id) and the prefetching thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpatterns.serving.batch_columnar import first_occurrences, rows_to_predict
from mlpatterns.serving.prefetch import prefetched

pytestmark = pytest.mark.unit


def first_by_hand(ids: list[str | None]) -> list[bool]:
    seen: set[str | None] = set()
    marks = []
    for row_id in ids:
        marks.append(row_id not in seen)
        seen.add(row_id)
    return marks


@given(st.lists(st.none() | st.text(alphabet="abc", max_size=3), max_size=60))
def test_first_occurrences_agree_with_a_set(ids: list[str | None]) -> None:
    assert first_occurrences(pa.array(ids, pa.string())).tolist() == first_by_hand(ids)


@given(st.lists(st.text(alphabet="abc", max_size=3), max_size=60), st.integers(1, 7))
def test_first_occurrences_across_chunks(ids: list[str], size: int) -> None:
    chunks = [pa.array(ids[i : i + size], pa.string()) for i in range(0, len(ids), size)]
    chunked = pa.chunked_array(chunks, type=pa.string())
    assert first_occurrences(chunked).tolist() == first_by_hand(ids)


def test_sorted_ids_are_all_first_and_a_repeat_still_counts() -> None:
    assert first_occurrences(pa.array(["a", "b", "c"])).tolist() == [True, True, True]
    # sorted but not strictly: the repeat is found by the hashing path
    assert first_occurrences(pa.array(["a", "b", "b", "c"])).tolist() == [True, True, False, True]


def test_rows_to_predict_leaves_out_done_repeated_and_missing_ids(tmp_path: Path) -> None:
    source = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": ["x", "done", None, "x", "y"], "f": [1.0] * 5}), source)
    unreadable: dict[str, str] = {}
    rows = rows_to_predict(source, "id", pa.array(["done"]), unreadable)
    assert rows.wanted.tolist() == [True, False, False, False, True]
    assert rows.without_id == {"<row 3>": "has no id"}
    assert rows.ids.to_pylist() == ["x", "done", None, "x", "y"]
    assert unreadable == {}


def test_rows_to_predict_counts_what_csv_cannot_parse(tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("id,f\na,1\nb,2,3\nc,3\n")
    unreadable: dict[str, str] = {}
    rows = rows_to_predict(source, "id", pa.array([], pa.string()), unreadable)
    assert rows.wanted.tolist() == [True, True]
    assert rows.ids.to_pylist() == ["a", "c"]
    assert unreadable == {"b": "has 3 fields; the file's header has 2"}


def test_prefetched_keeps_order_and_raises_the_producers_error() -> None:
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("row 2 is unreadable")

    items = prefetched(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match="row 2 is unreadable"):
        next(items)


def test_prefetched_stops_its_thread_when_the_consumer_leaves() -> None:
    produced = []

    def endless() -> Iterator[int]:
        for item in range(1_000_000):
            produced.append(item)
            yield item

    before = threading.active_count()
    items = prefetched(endless(), depth=2, name="test-prefetch")
    assert next(items) == 0
    items.close()  # what a consumer's exception or break does
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before
    assert len(produced) <= 5  # it ran at most `depth` (plus the items in hand) ahead


def test_first_occurrences_of_nothing() -> None:
    assert first_occurrences(pa.array([], pa.string())).dtype == np.bool_


@given(st.lists(st.integers(0, 9), max_size=12), st.integers(1, 7))
def test_chunks_are_exactly_the_size_asked_whatever_the_reader_gives(
    sizes: list[int], size: int
) -> None:
    from mlpatterns.serving.batch_columnar import _exactly

    values = iter(range(1000))
    column = [pa.array([next(values) for _ in range(n)], pa.int64()) for n in sizes]
    batches = [pa.record_batch({"a": values_of_one}) for values_of_one in column]
    chunks = list(_exactly(iter(batches), size))
    assert all(chunk.num_rows == size for chunk in chunks[:-1])
    assert 0 < chunks[-1].num_rows <= size if chunks else sum(sizes) == 0
    flat = [v for chunk in chunks for v in chunk.column(0).to_pylist()]
    assert flat == list(range(sum(sizes)))
