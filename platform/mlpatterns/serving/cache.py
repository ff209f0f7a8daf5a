"""The prediction cache: answers by (model digest, input rows), each kept `ttl`
seconds, at most `max_entries` of them: in the process (`PredictionCache`, least
recently used out; cachetools' TTLCache), or in Redis for every replica of a version
(`SharedPredictionCache`, oldest out). The rows are the request's numbers exactly as
read: two requests share an answer only when their inputs are identical, and the
digest keeps a new model from an old answer."""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections.abc import Callable

import orjson
import redis
import redis.asyncio
from cachetools import TTLCache

from mlpatterns.serving.inputs import Rows
from mlpatterns.serving.model import Prediction

__all__ = ["Key", "PredictionCache", "SharedPredictionCache"]

log = logging.getLogger("mlpatterns.serving")

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


# one answer and its place in its model's index, by order of arrival (a counter, not
# the clock: answers of one millisecond keep their order); beyond `max` the oldest go.
# An expired answer leaves its place in the index until it is the oldest: the index
# never holds more than `max`, whatever expired.
_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local order = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], order, KEYS[1])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if extra > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], extra)
  for i = 1, #oldest, 2 do redis.call('DEL', oldest[i]) end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
"""


class SharedPredictionCache:
    """The prediction cache in Redis, shared by every replica of a version: answers
    by (digest, rows) for `ttl` seconds, at most `max_entries` of them per model (the
    oldest out, by a sorted set that one Lua script keeps with each answer).
    Keys carry the service and the digest in a hash tag, so a model's keys share a
    slot. A Redis that fails or stalls (`timeout`) is a miss, never a failed request."""

    def __init__(
        self, client: redis.asyncio.Redis, service: str, max_entries: int, ttl: float
    ) -> None:
        self._redis = client
        self._service = service
        self._max = max_entries
        self._ttl_ms = max(1, round(ttl * 1000))
        self._put = client.register_script(_PUT)
        self.errors = 0

    def key(self, digest: str, rows: Rows) -> str:
        values = struct.pack(f"<i{len(rows.values)}d", rows.width, *rows.values)
        return f"mlpatterns:cache:{{{self._service}:{digest}}}:{hashlib.sha256(values).hexdigest()}"

    async def get(self, key: str) -> Prediction | None:
        try:
            raw = await self._redis.get(key)
        except redis.RedisError as error:
            self._failed("read", error)
            return None
        if raw is None:
            return None
        answer = orjson.loads(raw)
        return Prediction(answer["labels"], answer["probabilities"], True)

    async def put(self, key: str, prediction: Prediction) -> None:
        if not prediction.finite:
            return
        value = orjson.dumps(
            {"labels": prediction.labels, "probabilities": prediction.probabilities}
        )
        model = key.rsplit(":", 1)[0]
        try:
            await self._put(
                keys=[key, f"{model}:index", f"{model}:order"],
                args=[value, self._ttl_ms, self._max],
            )
        except redis.RedisError as error:
            self._failed("write", error)

    def _failed(self, what: str, error: Exception) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:  # said, not once per request
            log.warning(
                "the prediction cache could not %s Redis (%d times): %r", what, self.errors, error
            )
