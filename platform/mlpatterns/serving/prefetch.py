"""Run a producer on its own thread, a bounded number of items ahead of its consumer,
so that reading (pyarrow, which releases the GIL) overlaps predicting and writing."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

__all__ = ["Item", "prefetched"]

Item = TypeVar("Item")

_POLL_SECONDS = 0.1  # how soon a producer notices that its consumer has gone


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def prefetched(
    items: Iterator[Item], depth: int = 2, name: str = "prefetch"
) -> Generator[Item, None, None]:
    """The items of `items`, produced on a thread; its exception is raised here, and
    closing this generator (or an exception in the consumer) stops the thread."""
    handoff: queue.Queue[Item | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Item | _End) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as error:  # handed to the consumer, who raises it
            offer(_End(error))
            return
        offer(_End(None))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()
