"""The prediction cache: answers by (model digest, input rows), least recently used
out beyond `max_entries`, each kept `ttl` seconds (cachetools' TTLCache). The rows
are the request's numbers exactly as read: two requests share an answer only when
their inputs are identical, and the digest keeps a new model from an old answer."""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import TTLCache

from mlpatterns.serving.inputs import Rows
from mlpatterns.serving.model import Prediction

__all__ = ["Key", "PredictionCache"]

Key = tuple[str, int, tuple[float, ...]]


class PredictionCache:
    def __init__(
        self, max_entries: int, ttl: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._answers: TTLCache[Key, Prediction] = TTLCache(max_entries, ttl, timer=timer)

    @staticmethod
    def key(digest: str, rows: Rows) -> Key:
        return digest, rows.width, tuple(rows.values)

    def get(self, key: Key) -> Prediction | None:
        return self._answers.get(key)

    def put(self, key: Key, prediction: Prediction) -> None:
        if prediction.finite:  # a refused answer (422) is not one to give again
            self._answers[key] = prediction

    def __len__(self) -> int:
        return len(self._answers)
