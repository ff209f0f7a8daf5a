"""Which rows of a batch input to predict, decided from their ids: not a row whose id
has a prediction already (`done`), came earlier in the file, or is missing.

Decisions are made chunk by chunk, as late as they can be. While the ids ascend
strictly (tables exported in key order, the common case) and nothing is done yet,
every row is a first occurrence: each chunk costs a comparison per row, and predicting
starts at once. At the first id out of order, or on a rerun, the rest of the file's
ids are read and decided at once, with a stable sort over every id so far: sorting
beats hashing strings in arrow (a third of the time for a million ids), and neither
costs a Python object per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Wanted = npt.NDArray[np.bool_]


def decide_rows(id_chunks: Iterable[pa.Array], done: pa.Array) -> Iterator[tuple[pa.Array, Wanted]]:
    """Each chunk of ids (as strings), and whether to predict each of its rows."""
    chunks = iter(id_chunks)
    earlier: list[pa.Array] = []  # kept for the decision at once, should one be needed
    last: str | None = None
    if not len(done):
        for ids in chunks:
            if not _ascends_after(ids, last):
                yield from _decided_at_once(earlier, [ids, *chunks], done)
                return
            earlier.append(ids)
            last = ids[-1].as_py() if len(ids) else last
            yield ids, np.ones(len(ids), dtype=bool)
        return
    yield from _decided_at_once(earlier, list(chunks), done)


def _decided_at_once(
    earlier: list[pa.Array], chunks: list[pa.Array], done: pa.Array
) -> Iterator[tuple[pa.Array, Wanted]]:
    known = sum(len(ids) for ids in earlier)
    everything = pa.chunked_array([*earlier, *chunks], type=pa.string())
    wanted = first_occurrences(everything)[known:]
    rest = everything.slice(known)
    if len(done):
        wanted &= ~pc.is_in(rest, value_set=done).to_numpy(zero_copy_only=False)
    if rest.null_count:
        wanted &= pc.is_valid(rest).to_numpy(zero_copy_only=False)
    start = 0
    for ids in chunks:
        yield ids, wanted[start : start + len(ids)]
        start += len(ids)


def _ascends_after(ids: pa.Array, last: str | None) -> bool:
    """Every id above the one before it, the previous chunk's last included. Python
    compares strings by code point, arrow by UTF-8 byte: the same order."""
    if not len(ids):
        return True
    if ids.null_count or (last is not None and not ids[0].as_py() > last):
        return False
    return _strictly_increasing(ids)


def first_occurrences(ids: pa.Array | pa.ChunkedArray) -> Wanted:
    """True where an id appears for the first time; a missing id counts as one value."""
    first = np.ones(len(ids), dtype=bool)
    if len(ids) < 2 or _strictly_increasing(ids):
        return first
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    # a stable sort keeps equal ids in file order: the first of each run is first
    order = pc.sort_indices(ids)
    ordered = ids.take(order)
    later, earlier = ordered.slice(1), ordered.slice(0, len(ids) - 1)
    repeats = pc.equal(later, earlier).fill_null(False).to_numpy(zero_copy_only=False)
    if ordered.null_count:  # nulls sort last; equal() of two nulls is null, not true
        missing = ~pc.is_valid(ordered).to_numpy(zero_copy_only=False)
        repeats |= missing[1:] & missing[:-1]
    first[order.to_numpy()[1:][repeats]] = False
    return first


def _strictly_increasing(ids: pa.Array | pa.ChunkedArray) -> bool:
    """Checking the order costs a comparison per row, far less than sorting the ids."""
    if ids.null_count:
        return False
    ascending = pc.greater(ids.slice(1), ids.slice(0, len(ids) - 1))
    return bool(pc.all(ascending).as_py())
