"""The prediction cache of a version: identical inputs to the same model answered
from memory, for `ttlSeconds`, at most `maxEntries` answers (least recently used out).
Its key holds the model's digest, so a new model never serves an old answer."""

from __future__ import annotations

from pydantic import Field

from mlpatterns.api.base import Strict

__all__ = ["CACHED_PATTERNS", "Cache"]

CACHED_PATTERNS = ("web-single", "synchronous", "preprocess-prediction")


class Cache(Strict):
    enabled: bool = Field(default=True, description="The off switch: false keeps the settings.")
    max_entries: int = Field(default=10_000, ge=1, le=10_000_000, alias="maxEntries")
    ttl_seconds: float = Field(default=300, gt=0, le=86_400, alias="ttlSeconds")
