"""The columnar batch path's pure parts: which rows to predict (first occurrences of
each id, minus those done, minus those without an id) and the prefetching thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpatterns.serving.batch import columnar_chunk_rows
from mlpatterns.serving.batch.columnar import Prepared, prepared
from mlpatterns.serving.batch.ids import decide_rows, first_occurrences
from mlpatterns.serving.batch.parts import PartsSink
from mlpatterns.serving.batch.places import place
from mlpatterns.serving.batch.reading import Features, feature_chunks, selections
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


# ids of 17 bytes or more differing only in the middle share their first and last 8
# bytes and their length: their keys are equal, and only comparing them tells them apart
_SAME_ENDS = st.builds(lambda middle: f"customer{middle}00000000", st.text("xyz", max_size=3))


@given(
    st.lists(st.none() | st.text(alphabet="ab\u00e9", max_size=12) | _SAME_ENDS, max_size=80),
    st.integers(0, 5),
)
def test_first_occurrences_by_keys_agree_with_a_set_sliced_or_not(
    ids: list[str | None], cut: int
) -> None:
    array = pa.array(["skipped"] * cut + ids, pa.string()).slice(cut)  # offsets not from 0
    assert first_occurrences(array).tolist() == first_by_hand(ids)


def test_equal_ids_have_equal_keys_wherever_they_are() -> None:
    from mlpatterns.serving.batch.ids import id_keys

    ids = ["r1", "a-much-longer-identifier", "", None, "r1", "a-much-longer-identifier", None]
    keys = id_keys(pa.array(["x" * 13, *ids], pa.string()).slice(1)).tolist()
    assert keys[0] == keys[4]
    assert keys[1] == keys[5]
    assert keys[3] == keys[6] == 0
    assert len({keys[0], keys[1], keys[2]}) == 3
    # arrow lets a missing value's offsets span bytes: they are not its id
    offsets = pa.py_buffer(np.array([0, 2, 4, 6, 7], np.int32).tobytes())
    validity = pa.array([True, False, True, False]).buffers()[1]
    spanning = pa.StringArray.from_buffers(4, offsets, pa.py_buffer(b"abzzabq"), validity)
    assert spanning.to_pylist() == ["ab", None, "ab", None]
    assert id_keys(spanning).tolist()[1::2] == [0, 0]
    assert first_occurrences(spanning).tolist() == [True, True, False, False]


def test_sorted_ids_are_all_first_and_a_repeat_still_counts() -> None:
    assert first_occurrences(pa.array(["a", "b", "c"])).tolist() == [True, True, True]
    # sorted but not strictly: the repeat is found by the hashing path
    assert first_occurrences(pa.array(["a", "b", "b", "c"])).tolist() == [True, True, False, True]


def decided(chunks: list[list[str | None]], done: list[str]) -> list[list[bool]]:
    arrays = [pa.array(chunk, pa.string()) for chunk in chunks]
    decisions = list(decide_rows(arrays, pa.array(done, pa.string())))
    assert [ids.to_pylist() for ids, _ in decisions] == chunks  # the ids pass through
    return [wanted.tolist() for _, wanted in decisions]


def wanted_by_hand(ids: list[str | None], done: list[str]) -> list[bool]:
    return [
        first and row_id is not None and row_id not in done
        for row_id, first in zip(ids, first_by_hand(ids), strict=True)
    ]


@given(
    st.lists(st.none() | st.text(alphabet="abc", max_size=3), max_size=40),
    st.integers(1, 7),
    st.lists(st.text(alphabet="abc", max_size=3), max_size=5),
)
def test_decide_rows_agrees_with_a_set(ids: list[str | None], size: int, done: list[str]) -> None:
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    flat = [wanted for chunk in decided(chunks, done) for wanted in chunk]
    assert flat == wanted_by_hand(ids, done)


@given(st.sets(st.text(alphabet="abcd", max_size=4), max_size=40), st.integers(1, 7))
def test_decide_rows_in_key_order_then_out_of_it(unique: set[str], size: int) -> None:
    """Ascending ids (decided chunk by chunk), then repeats of them and a step back
    (decided at once, against every id before)."""
    ordered = sorted(unique)
    ids = ordered + ordered[:3] + ["0"]
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    flat = [wanted for chunk in decided(chunks, []) for wanted in chunk]
    assert flat == wanted_by_hand(list(ids), [])


def test_ascending_chunks_are_decided_before_the_rest_is_read() -> None:
    def chunks() -> Iterator[pa.Array]:
        yield pa.array(["a", "b"])
        yield pa.array(["c", "d"])
        raise AssertionError("read further than the first two chunks")

    decisions = decide_rows(chunks(), pa.array([], pa.string()))
    assert next(decisions)[1].tolist() == [True, True]
    assert next(decisions)[1].tolist() == [True, True]


def test_a_step_back_or_a_missing_id_is_decided_against_everything_before() -> None:
    assert decided([["a", "b"], ["c", "b"], ["d"]], []) == [[True, True], [True, False], [True]]
    assert decided([["a", "b"], ["a"]], []) == [[True, True], [False]]  # equal: not above
    assert decided([["a"], [None, "b", None]], []) == [[True], [False, True, False]]
    assert decided([["a", "b"], ["c"]], ["b"]) == [[True, False], [True]]  # a rerun


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
    from mlpatterns.serving.batch.reading import exactly

    values = iter(range(1000))
    column = [pa.array([next(values) for _ in range(n)], pa.int64()) for n in sizes]
    batches = [pa.record_batch({"a": values_of_one}) for values_of_one in column]
    chunks = list(exactly(iter(batches), size))
    assert all(chunk.num_rows == size for chunk in chunks[:-1])
    assert 0 < chunks[-1].num_rows <= size if chunks else sum(sizes) == 0
    flat = [v for chunk in chunks for v in chunk.column(0).to_pylist()]
    assert flat == list(range(sum(sizes)))


def prepared_csv(source: Path, size: int) -> list[Prepared]:
    """The features' and the ids' streams of a CSV file with one feature, paired as the
    pipeline pairs them, the trailing decision (broken rows at the end) included."""
    read = list(feature_chunks(place(source), ["f"], size))
    decided = list(selections(place(source), "id", size, pa.array([], pa.string())))
    assert len(decided) in (len(read), len(read) + 1)
    nothing = Features(pa.record_batch({}), np.empty((0, 1), np.float32), 0)
    read += [nothing] * (len(decided) - len(read))
    return [prepared(chunk, decision, ["f"]) for chunk, decision in zip(read, decided, strict=True)]


def test_prepared_counts_what_csv_cannot_parse(tmp_path: Path) -> None:
    """Broken rows, in the middle and at the end, are counted as read and rejected with
    their reason; a repeated id is skipped; the rest keep their order."""
    source = tmp_path / "rows.csv"
    source.write_text("id,f\na,1\nb,2,3\nc,4\na,5\nd,6\ne,7,8\n")
    chunks = prepared_csv(source, 2)
    assert sum(chunk.read for chunk in chunks) == 6
    assert sum(chunk.skipped for chunk in chunks) == 1
    assert [v for chunk in chunks for v in chunk.ids.to_pylist()] == ["a", "c", "d"]
    rejected = {key: why for chunk in chunks for key, why in chunk.rejected.items()}
    assert rejected == {
        "b": "has 3 fields; the file's header has 2",
        "e": "has 3 fields; the file's header has 2",
    }


@pytest.mark.parametrize(
    ("features", "rows"),
    [
        (1, 100_000),
        (4, 100_000),
        (10, 100_000),
        (11, 95_325),
        (64, 16_384),
        (1_024, 1_024),
        (100_000, 1_024),
        (0, 100_000),
    ],
)
def test_default_parts_hold_at_most_4_mib_of_features(features: int, rows: int) -> None:
    assert columnar_chunk_rows(features) == rows


def test_broken_csv_rows_are_named_by_their_id_wherever_the_id_column_is(
    tmp_path: Path,
) -> None:
    """The id read as CSV reads it (a quoted comma is no separator), from the id column
    whatever its place; a row too short to have one is named by its text."""
    source = tmp_path / "rows.csv"
    source.write_text('f,id\n1,a\n"2,5",b,9\n7\n3,c\n')
    chunks = prepared_csv(source, 10)
    assert [v for chunk in chunks for v in chunk.ids.to_pylist()] == ["a", "c"]
    rejected = {key: why for chunk in chunks for key, why in chunk.rejected.items()}
    assert rejected == {
        "b": "has 3 fields; the file's header has 2",
        "<row '7'>": "has 1 fields; the file's header has 2",
    }


def test_parts_declare_every_column_required_and_read_beside_older_parts(
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    folder = tmp_path / "predictions.parquet"
    folder.mkdir()
    # a part as earlier versions wrote it: the same columns, every one nullable
    older = pa.table(
        {
            "id": ["a"],
            "label": pa.array(["y"]).dictionary_encode(),
            "p_x": pa.array([0.25], pa.float32()),
            "p_y": pa.array([0.75], pa.float32()),
            "model_version": pa.array(["1"]).dictionary_encode(),
            "predicted_at": pa.array(["then"]).dictionary_encode(),
        }
    )
    pq.write_table(older, folder / "part-0-older.parquet")
    sink = PartsSink(place(folder), ["x", "y"], force=False)
    assert sink.done_ids().to_pylist() == ["a"]
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    sink.write(pa.array(["b", "c"]), np.array([0, 1]), probabilities, "2")

    [written] = set(folder.glob("part-*.parquet")) - {folder / "part-0-older.parquet"}
    schema = pq.read_schema(written)
    assert schema.names == older.column_names
    assert not any(field.nullable for field in schema)
    table = pq.read_table(folder).sort_by("id")
    assert table.column("id").to_pylist() == ["a", "b", "c"]
    assert table.column("label").to_pylist() == ["y", "x", "y"]
    assert table.column("p_y").to_pylist() == pytest.approx([0.75, 0.1, 0.8])
    assert table.column("model_version").to_pylist() == ["1", "2", "2"]
    assert sorted(sink.done_ids().to_pylist()) == ["a", "b", "c"]


def test_an_id_column_that_is_not_text_or_numbers_is_refused_before_reading(
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    from mlpatterns.serving.batch import BatchInputError
    from mlpatterns.serving.batch.reading import checked_source

    source = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"key": [[1], [2]], "n": [7, 8], "f": [1.0, 2.0]}), source)
    with pytest.raises(BatchInputError, match=r"'key' holds list<element: int64>.*--id-column"):
        checked_source(place(source), ["key", "f"])
    assert checked_source(place(source), ["n", "f"]).path == str(source)  # numbers are ids too
