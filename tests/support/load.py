"""Steady background traffic for tests that change routes under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@contextmanager
def steady_load(url: str, body: dict[str, Any], clients: int = 4) -> Iterator[list[str]]:
    """POST `body` to `url`/predict from `clients` threads until the block ends; the
    list it yields collects every answer that was not a 200."""
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                answer = client.post("/predict", json=body)
                if answer.status_code != 200:
                    failures.append(answer.text)

    threads = [threading.Thread(target=load) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield failures
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


@dataclass
class Answered:
    at: float  # time.monotonic()
    status: int
    version: str


@contextmanager
def recorded_load(
    url: str,
    rows: Sequence[Sequence[float]],
    *,
    clients: int = 4,
    pause: float = 0.02,
    limit_seconds: float = 180.0,
) -> Iterator[list[Answered]]:
    """POST one of `rows` at a time to `url`/predict from `clients` threads, each
    resting `pause` seconds between requests, until the block ends or `limit_seconds`
    pass; the list it yields records every answer (a failed connection is status 0)."""
    answers: list[Answered] = []
    stop = threading.Event()
    deadline = time.monotonic() + limit_seconds

    def load(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            index = offset
            while not stop.is_set() and time.monotonic() < deadline:
                row = list(rows[index % len(rows)])
                index += clients
                try:
                    answer = client.post("/predict", json={"data": [row]})
                    version = answer.headers.get("x-mlpatterns-version", "")
                    answers.append(Answered(time.monotonic(), answer.status_code, version))
                except httpx.HTTPError:
                    answers.append(Answered(time.monotonic(), 0, ""))
                stop.wait(pause)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
