"""The data cache of a version: a request that names entities (`{"ids": [...]}`) gets
their features from a feature source (a SQLite or Parquet table in the embedded mode,
Redis hashes anywhere) through an in-process cache of at most `maxEntries` rows, each
kept `ttlSeconds`. The source's columns (or hash fields) are the model's features."""

from __future__ import annotations

from pydantic import Field, model_validator

from mlpatterns.api.base import Strict

__all__ = [
    "FEATURE_PATTERNS",
    "DataCache",
    "Features",
    "ParquetSource",
    "RedisSource",
    "SqliteSource",
]

FEATURE_PATTERNS = ("web-single", "synchronous")
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


class SqliteSource(Strict):
    path: str = Field(min_length=1, description="The database file (relative: to where `up` runs).")
    table: str = Field(pattern=IDENTIFIER)
    id_column: str = Field(default="id", pattern=IDENTIFIER, alias="idColumn")


class ParquetSource(Strict):
    path: str = Field(min_length=1, description="The Parquet file (relative: to where `up` runs).")
    id_column: str = Field(default="id", pattern=IDENTIFIER, alias="idColumn")


class RedisSource(Strict):
    key_prefix: str = Field(
        pattern=r"^[A-Za-z0-9:._-]{1,64}$",
        alias="keyPrefix",
        description="An entity's features are the hash at <keyPrefix><id>, one field per "
        "feature, in the platform's Redis (MLPATTERNS_REDIS_URL).",
    )


class DataCache(Strict):
    max_entries: int = Field(default=100_000, ge=1, le=10_000_000, alias="maxEntries")
    ttl_seconds: float = Field(default=60, gt=0, le=86_400, alias="ttlSeconds")


class Features(Strict):
    sqlite: SqliteSource | None = None
    parquet: ParquetSource | None = None
    redis: RedisSource | None = None
    cache: DataCache = Field(default_factory=DataCache)

    @model_validator(mode="after")
    def _one_source(self) -> Features:
        given = [s for s in (self.sqlite, self.parquet, self.redis) if s is not None]
        if len(given) != 1:
            raise ValueError(
                "features needs exactly one source: sqlite {path, table, idColumn}, parquet "
                "{path, idColumn} or redis {keyPrefix}"
            )
        return self

    @property
    def kind(self) -> str:
        return "sqlite" if self.sqlite else "parquet" if self.parquet else "redis"
