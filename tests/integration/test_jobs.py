"""The job queue's contract, on SQLite and on a real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpatterns.serving.jobs import JobQueue, SqliteQueue, open_queue

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "redis"])
def queue(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[JobQueue]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else redis_url
    options = {"visibility_timeout": 0.5, "max_attempts": 2, "ttl": 60}
    if request.param == "redis":  # a namespace per test on the shared server
        from mlpatterns.serving.jobs.redis_queue import RedisQueue

        opened: JobQueue = RedisQueue(url, namespace=f"t-{uuid.uuid4().hex[:8]}", **options)
    else:
        opened = open_queue(url, **options)
    yield opened
    opened.close()


def test_submit_claim_complete(queue: JobQueue) -> None:
    queue.submit("a", b"payload-a")
    queue.submit("b", b"payload-b")
    assert queue.depth() == 2
    job = queue.claim("w1")
    assert job is not None
    assert (job.id, job.payload, job.attempts) == ("a", b"payload-a", 1)  # oldest first
    assert queue.status("a").state == "running"  # type: ignore[union-attr]
    assert queue.complete(job, b'{"ok": 1}')
    status = queue.status("a")
    assert status is not None
    assert (status.state, status.result) == ("done", b'{"ok": 1}')
    assert queue.completions("a") == 1
    assert queue.status("missing") is None


def test_an_id_taken_is_never_queued_again_nor_replaced(queue: JobQueue) -> None:
    assert queue.submit("same", b"first")
    job = queue.claim("w1")
    assert job is not None
    assert queue.complete(job, b"answer")

    assert not queue.submit("same", b"second")

    assert queue.depth() == 0
    status = queue.status("same")
    assert status is not None
    assert (status.state, status.result) == ("done", b"answer")
    assert queue.claim("w2") is None


def test_a_silent_worker_loses_its_job_which_completes_once(queue: JobQueue) -> None:
    queue.submit("j", b"x")
    first = queue.claim("dies")
    assert first is not None
    assert queue.claim("other") is None  # leased: invisible to others
    time.sleep(0.6)  # the visibility timeout passes
    second = queue.claim("other")
    assert second is not None
    assert second.attempts == 2
    assert queue.complete(second, b"r")
    assert not queue.complete(first, b"late")  # the lost lease cannot complete it again
    assert queue.completions("j") == 1


def test_a_failing_job_is_retried_then_dead_lettered(queue: JobQueue) -> None:
    queue.submit("bad", b"x")
    first = queue.claim("w")
    assert first is not None
    assert queue.fail(first, "ValueError: one") == "pending"
    second = queue.claim("w")
    assert second is not None
    assert queue.fail(second, "ValueError: two") == "failed"
    assert queue.claim("w") is None
    status = queue.status("bad")
    assert status is not None
    assert (status.state, status.error, status.attempts) == ("failed", "ValueError: two", 2)


def test_a_job_whose_worker_keeps_dying_is_dead_lettered(queue: JobQueue) -> None:
    queue.submit("cursed", b"x")
    for _ in range(2):
        assert queue.claim("w") is not None
        time.sleep(0.6)
    assert queue.claim("w") is None
    status = queue.status("cursed")
    assert status is not None
    assert status.state == "failed"
    assert "stopped before finishing, 2 times" in (status.error or "")


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_results_are_deleted_once_their_ttl_has_passed(
    backend: str, tmp_path: Path, redis_url: str
) -> None:
    queue: JobQueue
    if backend == "redis":
        from mlpatterns.serving.jobs.redis_queue import RedisQueue

        queue = RedisQueue(redis_url, namespace=f"t-{uuid.uuid4().hex[:8]}", ttl=1)
    else:
        queue = SqliteQueue(tmp_path / "jobs.db", ttl=1, purge_every=0)
    try:
        queue.submit("old", b"x")
        job = queue.claim("w")
        assert job is not None
        assert queue.complete(job, b"{}")
        assert queue.completions("old") == 1
        time.sleep(1.5)
        assert queue.status("old") is None  # unreadable once expired
        assert queue.claim("w") is None  # a worker's poll purges (SQLite)
        assert queue.completions("old") == 0  # and the stored job is gone
    finally:
        queue.close()
