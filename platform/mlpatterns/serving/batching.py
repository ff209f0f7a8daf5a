"""Adaptive micro-batching: concurrent requests share one onnxruntime run.

A request joins the pending batch; the batch runs on the event loop's next turn, so
every request read in the same turn shares one run. Under light load a request runs
alone at once (no waiting); under heavy load batches grow up to `max_rows`. With
`inference_thread`, runs go to one dedicated thread instead (onnxruntime releases
the GIL) and the loop keeps reading requests meanwhile: better when the model is
slow and there is a core to spare, worse on one core, where the two take turns.
An optional `max_wait` holds a lone request briefly for company.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from mlpatterns.serving.inputs import Rows
from mlpatterns.serving.model import Prediction

__all__ = ["MicroBatcher", "Predict"]

Predict = Callable[[npt.NDArray[np.float32]], Prediction]


class MicroBatcher:
    def __init__(
        self,
        predict: Predict,
        *,
        max_rows: int = 256,
        max_wait: float = 0.0,
        on_batch: Callable[[int, float], None] = lambda rows, seconds: None,
        inference_thread: bool = False,
    ) -> None:
        self._predict = predict
        self._max_rows = max_rows
        self._max_wait = max_wait
        self._on_batch = on_batch
        self._pending: list[tuple[Rows, asyncio.Future[Prediction]]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # bound at first use
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
            if inference_thread
            else None
        )

    def predict(self, rows: Rows) -> asyncio.Future[Prediction]:
        """The rows' prediction, when their batch has run. A plain function returning the
        future: every request awaits it, and a coroutine around it is one more frame
        to suspend and resume per request."""
        loop = self._loop
        if loop is None:  # once: on Python 3.11 every get_running_loop() calls getpid(2)
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Prediction] = loop.create_future()
        self._pending.append((rows, future))
        if not self._draining:
            self._draining = True
            # held: the loop keeps only a weak reference to a running task
            self._drainer = loop.create_task(self._drain(loop))
        return future

    def _take(self) -> list[tuple[Rows, asyncio.Future[Prediction]]]:
        """The oldest requests whose rows fit in one run (at least one request)."""
        count, rows = 0, 0
        for request, _ in self._pending:
            if count and rows + len(request) > self._max_rows:
                break
            count += 1
            rows += len(request)
        taken = self._pending[:count]
        del self._pending[:count]
        return taken

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._pending:
                if self._max_wait and len(self._pending) == 1:
                    await asyncio.sleep(self._max_wait)
                batch = self._take()
                try:
                    await self._run(loop, batch)
                except Exception as error:  # every waiting request learns of it: none hangs
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
        finally:
            self._draining = False

    async def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[Rows, asyncio.Future[Prediction]]],
    ) -> None:
        matrix = Rows.stack([rows for rows, _ in batch])
        started = time.perf_counter()
        if self._executor is None:
            result = self._predict(matrix)
        else:
            result = await loop.run_in_executor(self._executor, self._predict, matrix)
        self._on_batch(len(matrix), time.perf_counter() - started)
        offset = 0
        for rows, future in batch:
            end = offset + len(rows)
            if not future.done():
                future.set_result(result.rows(offset, end))
            offset = end

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
