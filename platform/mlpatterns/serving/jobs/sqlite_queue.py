"""The job queue in one SQLite file: the embedded mode's default."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from mlpatterns.serving.jobs.base import Job, JobStatus, State

__all__ = ["SqliteQueue"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    lease_until REAL,
    result BLOB,
    error TEXT,
    completions INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    expires REAL
);
CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (state, created);
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires);
"""


class SqliteQueue:
    """Jobs in one SQLite file, shared by processes on one machine (WAL, immediate locks)."""

    def __init__(
        self,
        path: Path,
        *,
        visibility_timeout: float = 30,
        max_attempts: int = 3,
        ttl: float = 3600,
        purge_every: float = 60,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.visibility_timeout = visibility_timeout
        self.max_attempts = max_attempts
        self.ttl = ttl
        self.purge_every = purge_every
        self._purged_at = 0.0
        self._lock = threading.Lock()  # one connection, shared by a process's threads
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def submit(self, job_id: str, payload: bytes) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO jobs (id, payload, state, created) "
                "VALUES (?, ?, 'pending', ?)",
                (job_id, payload, time.time()),
            )
            return cursor.rowcount == 1

    def claim(self, worker: str) -> Job | None:
        now = time.time()
        lease = f"{worker}:{now:.6f}"
        with self._lock:
            return self._claim(now, lease)

    def _claim(self, now: float, lease: str) -> Job | None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # abandoned jobs that used their last attempt go to the dead letter
            self._db.execute(
                "UPDATE jobs SET state='failed', lease=NULL, payload=x'', expires=?, "
                "error=COALESCE(error, "
                "'its worker stopped before finishing, ' || attempts || ' times') "
                "WHERE state='running' AND lease_until < ? AND attempts >= ?",
                (now + self.ttl, now, self.max_attempts),
            )
            if now - self._purged_at >= self.purge_every:
                # expired results are unreadable already; without this the file only grows
                self._db.execute("DELETE FROM jobs WHERE expires < ?", (now,))
                self._purged_at = now
            row = self._db.execute(
                "UPDATE jobs SET state='running', lease=?, lease_until=?, attempts=attempts+1 "
                "WHERE id = (SELECT id FROM jobs WHERE state='pending' "
                "OR (state='running' AND lease_until < ?) ORDER BY created LIMIT 1) "
                "RETURNING id, payload, attempts",
                (lease, now + self.visibility_timeout, now),
            ).fetchone()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return Job(row[0], row[1], row[2], lease) if row else None

    def complete(self, job: Job, result: bytes) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET state='done', result=?, payload=x'', lease=NULL, "
                "completions=completions+1, expires=? WHERE id=? AND lease=? AND state='running'",
                (result, time.time() + self.ttl, job.id, job.lease),
            )
        return cursor.rowcount == 1

    def fail(self, job: Job, error: str) -> State:
        final = job.attempts >= self.max_attempts
        state: State = "failed" if final else "pending"
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state=?, error=?, lease=NULL, expires=?, "
                "payload=CASE WHEN ? THEN x'' ELSE payload END WHERE id=? AND lease=?",
                (state, error, time.time() + self.ttl if final else None, final, job.id, job.lease),
            )
        return state

    def status(self, job_id: str) -> JobStatus | None:
        with self._lock:
            row = self._db.execute(
                "SELECT state, attempts, result, error, expires FROM jobs WHERE id=?", (job_id,)
            ).fetchone()
        if row is None or (row[4] is not None and row[4] < time.time()):
            return None
        return JobStatus(job_id, row[0], row[1], row[2], row[3])

    def completions(self, job_id: str) -> int:
        """How many times the job was completed (the exactly-once check)."""
        with self._lock:
            row = self._db.execute("SELECT completions FROM jobs WHERE id=?", (job_id,)).fetchone()
        return int(row[0]) if row else 0

    def depth(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state='pending'").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
