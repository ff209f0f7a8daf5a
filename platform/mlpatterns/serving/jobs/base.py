"""The job queue's interface and its records, shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Job", "JobQueue", "JobStatus", "State"]

State = Literal["pending", "running", "done", "failed"]


@dataclass(frozen=True)
class Job:
    id: str
    payload: bytes
    attempts: int
    lease: str  # proof of the claim; needed to complete or fail the job


@dataclass(frozen=True)
class JobStatus:
    id: str
    state: State
    attempts: int
    result: bytes | None = None
    error: str | None = None


class JobQueue(Protocol):
    def submit(self, job_id: str, payload: bytes) -> bool:
        """Queue a new job; False (nothing changed) when `job_id` names one already."""
        ...

    def claim(self, worker: str) -> Job | None:
        """The oldest pending (or abandoned) job, leased to `worker`; None when idle."""
        ...

    def complete(self, job: Job, result: bytes) -> bool:
        """Store the result; False when the lease was lost (someone else has the job)."""
        ...

    def fail(self, job: Job, error: str) -> State:
        """Give the job back for a retry, or dead-letter it after the last attempt."""
        ...

    def status(self, job_id: str) -> JobStatus | None: ...

    def completions(self, job_id: str) -> int:
        """How many times the job was completed: at most 1, whatever happened to workers."""
        ...

    def depth(self) -> int:
        """Jobs waiting for a worker."""
        ...

    def close(self) -> None: ...
