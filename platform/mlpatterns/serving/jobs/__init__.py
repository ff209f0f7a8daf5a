"""The asynchronous pattern's job queue: one interface, SQLite (embedded default) and
Redis behind it.

A worker claims a job with a lease (the visibility timeout). A worker that dies
holding a lease loses it when the lease runs out, and the job is delivered again.
Completing or failing a job needs the lease, so a job that was redelivered can be
completed only once. A job that keeps failing (or keeps losing its worker) is
retried `max_attempts` times, then dead-lettered with its last error. Results and
errors are kept for `ttl` seconds, then deleted (Redis expires the keys; the SQLite
queue deletes expired rows while workers claim, at most once every `purge_every`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpatterns.serving.jobs.base import Job, JobQueue, JobStatus, State
from mlpatterns.serving.jobs.sqlite_queue import SqliteQueue

if TYPE_CHECKING:
    from mlpatterns.settings import Settings

__all__ = [
    "Job",
    "JobQueue",
    "JobStatus",
    "SqliteQueue",
    "State",
    "default_queue_url",
    "open_queue",
    "queue_from_settings",
]


def open_queue(
    url: str,
    *,
    visibility_timeout: float = 30,
    max_attempts: int = 3,
    ttl: float = 3600,
    password: str | None = None,
    namespace: str | None = None,
) -> JobQueue:
    """`redis://host:port/db` (several machines) or `sqlite:///path/queue.db` (one machine).
    `namespace` (or `?namespace=NAME` at the end of a Redis URL) keeps one queue apart
    from others in the same database (one per ModelService version); `password` is
    Redis' (MLPATTERNS_REDIS_PASSWORD), kept out of the URL and so out of any log."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from mlpatterns.serving.jobs.redis_queue import RedisQueue  # only Redis users need redis

        base, _, query = url.partition("?")
        options = dict(part.partition("=")[::2] for part in query.split("&") if part)
        given = options.pop("namespace", "mlpatterns")
        rest = "&".join(f"{k}={v}" for k, v in options.items())
        return RedisQueue(
            f"{base}?{rest}" if rest else base,
            namespace=namespace or given,
            visibility_timeout=visibility_timeout,
            max_attempts=max_attempts,
            ttl=ttl,
            password=password,
        )
    if url.startswith("sqlite:///"):
        return SqliteQueue(
            Path(url.removeprefix("sqlite:///")),
            visibility_timeout=visibility_timeout,
            max_attempts=max_attempts,
            ttl=ttl,
        )
    raise ValueError(f"unsupported queue {url!r}: use redis://host:port/db or sqlite:///path")


def default_queue_url(redis_url: str | None, home: Path) -> str:
    """MLPATTERNS_REDIS_URL when set, else a SQLite file under MLPATTERNS_HOME."""
    return redis_url or f"sqlite:///{home.resolve() / 'queue' / 'jobs.db'}"


def queue_from_settings(
    settings: Settings, url: str = "", namespace: str = "", **options: Any
) -> tuple[JobQueue, str]:
    """The queue at `url` (default: `default_queue_url`), with Redis' password from the
    settings, and the URL it opened; `options` go to `open_queue`."""
    url = url or default_queue_url(settings.redis_url, settings.home)
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return open_queue(url, password=password, namespace=namespace or None, **options), url
