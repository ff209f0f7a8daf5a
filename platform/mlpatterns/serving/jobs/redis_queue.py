"""The job queue on Redis: a list of waiting ids, a hash per job, a sorted set of
leases by expiry. Each transition is one Lua script, so it is atomic however many
API servers and workers share the queue. A finished job keeps its result, not its
payload. Every call gives up after `timeout` seconds with a `redis.RedisError`."""

from __future__ import annotations

import time
from typing import cast

import redis

from mlpatterns.serving.jobs.base import Job, JobStatus, State

__all__ = ["RedisQueue"]

# KEYS: pending list, leases zset, job key prefix. ARGV: now, lease, until, max_attempts, ttl
_CLAIM = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(expired) do
  local key = KEYS[3] .. id
  redis.call('ZREM', KEYS[2], id)
  if tonumber(redis.call('HGET', key, 'attempts')) >= tonumber(ARGV[4]) then
    redis.call('HSET', key, 'state', 'failed', 'error',
      'its worker stopped before finishing, ' .. redis.call('HGET', key, 'attempts') .. ' times')
    redis.call('HDEL', key, 'lease', 'payload')
    redis.call('EXPIRE', key, ARGV[5])
  else
    redis.call('HSET', key, 'state', 'pending')
    redis.call('HDEL', key, 'lease')
    redis.call('RPUSH', KEYS[1], id)
  end
end
local id = redis.call('LPOP', KEYS[1])
if not id then return nil end
local key = KEYS[3] .. id
local attempts = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'state', 'running', 'lease', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], id)
return {id, redis.call('HGET', key, 'payload'), attempts}
"""

# KEYS: job key, leases zset. ARGV: id, lease, result, ttl
_COMPLETE = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'completions', 1)
redis.call('HDEL', KEYS[1], 'lease', 'payload')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: job key, leases zset, pending list. ARGV: id, lease, error, final (0/1), ttl
_FAIL = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'lease')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'error', ARGV[3])
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'failed')
  redis.call('HDEL', KEYS[1], 'payload')
  redis.call('EXPIRE', KEYS[1], ARGV[5])
else
  redis.call('HSET', KEYS[1], 'state', 'pending')
  redis.call('RPUSH', KEYS[3], ARGV[1])
end
return 1
"""


class RedisQueue:
    def __init__(
        self,
        url: str,
        *,
        namespace: str = "mlpatterns",
        visibility_timeout: float = 30,
        max_attempts: int = 3,
        ttl: float = 3600,
        password: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        # a stalled Redis raises after `timeout` instead of blocking its caller forever
        self._redis = redis.Redis.from_url(
            url, password=password, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._prefix = f"{namespace}:jobs"
        self._pending = f"{self._prefix}:pending"
        self._leases = f"{self._prefix}:leases"
        self.visibility_timeout = visibility_timeout
        self.max_attempts = max_attempts
        self.ttl = int(ttl)
        self._claim = self._redis.register_script(_CLAIM)
        self._complete = self._redis.register_script(_COMPLETE)
        self._fail = self._redis.register_script(_FAIL)

    def _key(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}"

    def submit(self, job_id: str, payload: bytes) -> bool:
        key = self._key(job_id)
        if not self._redis.hsetnx(key, "state", "pending"):  # the id is claimed at once
            return False
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"payload": payload, "attempts": 0})
            pipe.rpush(self._pending, job_id)
            pipe.execute()
        return True

    def claim(self, worker: str) -> Job | None:
        now = time.time()
        lease = f"{worker}:{now:.6f}"
        found = self._claim(
            keys=[self._pending, self._leases, f"{self._prefix}:job:"],
            args=[now, lease, now + self.visibility_timeout, self.max_attempts, self.ttl],
        )
        if not found:
            return None
        job_id, payload, attempts = found
        return Job(job_id.decode(), bytes(payload), int(attempts), lease)

    def complete(self, job: Job, result: bytes) -> bool:
        done = self._complete(
            keys=[self._key(job.id), self._leases], args=[job.id, job.lease, result, self.ttl]
        )
        return bool(done)

    def fail(self, job: Job, error: str) -> State:
        final = job.attempts >= self.max_attempts
        self._fail(
            keys=[self._key(job.id), self._leases, self._pending],
            args=[job.id, job.lease, error, "1" if final else "0", self.ttl],
        )
        return "failed" if final else "pending"

    def status(self, job_id: str) -> JobStatus | None:
        fields = cast(dict[bytes, bytes], self._redis.hgetall(self._key(job_id)))
        if not fields:
            return None
        error = fields.get(b"error")
        return JobStatus(
            job_id,
            cast(State, fields[b"state"].decode()),
            int(fields.get(b"attempts", b"0")),
            fields.get(b"result"),
            error.decode() if error is not None else None,
        )

    def completions(self, job_id: str) -> int:
        value = self._redis.hget(self._key(job_id), "completions")
        return int(cast(bytes, value)) if value else 0

    def depth(self) -> int:
        return int(self._redis.llen(self._pending))

    def close(self) -> None:
        self._redis.close()
