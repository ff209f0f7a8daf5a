"""The prediction cache of a version: identical inputs to the same model answered
from memory (each replica's, or Redis shared by all with `shared`), for
`ttlSeconds`, at most `maxEntries` answers. Its key holds the model's digest, so a
new model never serves an old answer."""

from __future__ import annotations

from pydantic import Field

from mlpatterns.api.base import Strict

__all__ = ["CACHED_PATTERNS", "Cache"]

CACHED_PATTERNS = ("web-single", "synchronous", "preprocess-prediction")


class Cache(Strict):
    enabled: bool = Field(default=True, description="The off switch: false keeps the settings.")
    max_entries: int = Field(default=10_000, ge=1, le=10_000_000, alias="maxEntries")
    ttl_seconds: float = Field(default=300, gt=0, le=86_400, alias="ttlSeconds")
    shared: bool = Field(
        default=False,
        description="Kept in Redis (the platform's, MLPATTERNS_REDIS_URL) for every replica, "
        "rather than in each replica's memory.",
    )
