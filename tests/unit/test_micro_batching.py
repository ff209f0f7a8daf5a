"""Adaptive micro-batching: requests that arrive together share one model run."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
import pytest

from mlpatterns.serving.batching import MicroBatcher
from mlpatterns.serving.inputs import Rows
from mlpatterns.serving.model import Prediction

pytestmark = pytest.mark.unit


class Model:
    """Predicts each row's first value as its label, and records every run's size."""

    def __init__(self, fail: bool = False) -> None:
        self.runs: list[int] = []
        self.fail = fail

    def __call__(self, rows: npt.NDArray[np.float32]) -> Prediction:
        self.runs.append(len(rows))
        if self.fail:
            raise RuntimeError("the model broke")
        return Prediction.checked([str(int(r[0])) for r in rows], rows[:, :2] / 100)


def request(value: int, rows: int = 1) -> Rows:
    return Rows([float(value)] * rows * 2, 2)


def test_concurrent_requests_share_one_run_and_each_gets_its_own_rows() -> None:
    async def main() -> tuple[list[Prediction], list[int]]:
        model = Model()
        batcher = MicroBatcher(model, max_rows=256)
        answers = await asyncio.gather(
            *(batcher.predict(request(i, rows=i % 3 + 1)) for i in range(20))
        )
        return answers, model.runs

    answers, runs = asyncio.run(main())
    assert runs == [sum(i % 3 + 1 for i in range(20))]  # one run for all of them
    for i, answer in enumerate(answers):
        assert answer.labels == [str(i)] * (i % 3 + 1)
        assert [len(row) for row in answer.probabilities] == [2] * (i % 3 + 1)
        assert answer.finite


def test_a_batch_never_passes_max_rows_but_a_big_request_still_runs_alone() -> None:
    async def main() -> list[int]:
        model = Model()
        batcher = MicroBatcher(model, max_rows=10)
        sizes = [4, 4, 4, 30, 1, 9, 2]
        await asyncio.gather(*(batcher.predict(request(1, rows=n)) for n in sizes))
        return model.runs

    assert asyncio.run(main()) == [8, 4, 30, 10, 2]


def test_a_failed_run_fails_every_request_in_it_and_the_next_runs_go_on() -> None:
    async def main() -> tuple[list[BaseException | Prediction], Prediction]:
        model = Model(fail=True)
        batcher = MicroBatcher(model)
        failed = await asyncio.gather(
            *(batcher.predict(request(i)) for i in range(3)), return_exceptions=True
        )
        model.fail = False
        return failed, await batcher.predict(request(7))

    failed, later = asyncio.run(main())
    assert all(isinstance(f, RuntimeError) and "broke" in str(f) for f in failed)
    assert later.labels == ["7"]


def test_a_fault_after_the_run_fails_its_requests_instead_of_leaving_them_waiting() -> None:
    """Anything that breaks while a batch is handled (here the metrics callback) reaches
    the batch's requests as an error (a 500 for the server), never a request that hangs."""
    calls = 0

    def broken_metrics(rows: int, seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("metrics broke")

    async def main() -> tuple[list[BaseException | Prediction], Prediction]:
        batcher = MicroBatcher(Model(), on_batch=broken_metrics)
        failed = await asyncio.wait_for(
            asyncio.gather(
                *(batcher.predict(request(i)) for i in range(3)), return_exceptions=True
            ),
            timeout=5,
        )
        return failed, await asyncio.wait_for(batcher.predict(request(7)), timeout=5)

    failed, later = asyncio.run(main())
    assert all(isinstance(f, ValueError) for f in failed)
    assert later.labels == ["7"]


def test_max_wait_holds_a_lone_request_for_company() -> None:
    async def main(max_wait: float) -> list[int]:
        model = Model()
        batcher = MicroBatcher(model, max_wait=max_wait)
        first = asyncio.ensure_future(batcher.predict(request(1)))
        await asyncio.sleep(0.01)  # a second request, arriving a moment later
        await asyncio.gather(first, batcher.predict(request(2)))
        return model.runs

    assert asyncio.run(main(0.0)) == [1, 1]  # no waiting: the first ran alone at once
    assert asyncio.run(main(0.2)) == [2]


def test_the_inference_thread_gives_the_same_answers() -> None:
    async def main() -> list[Prediction]:
        batcher = MicroBatcher(Model(), inference_thread=True)
        try:
            return await asyncio.gather(*(batcher.predict(request(i)) for i in range(5)))
        finally:
            batcher.close()

    assert [a.labels for a in asyncio.run(main())] == [[str(i)] for i in range(5)]
