"""The loading-test pattern's part of a ModelService: the load a service must take
(a constant rate, or a fixed number of clients), for how long, with what request,
and the thresholds its answers must meet. `mlpatterns loadtest` runs it and exits
non-zero when a threshold fails, so that it can gate a rollout or a CI job."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from mlpatterns.api.base import Strict

__all__ = ["LoadTest", "LoadThresholds"]


class LoadThresholds(Strict):
    p50_ms: float | None = Field(default=None, gt=0, alias="p50Ms")
    p99_ms: float | None = Field(default=None, gt=0, alias="p99Ms")
    min_success_ratio: float | None = Field(
        default=None, ge=0, le=1, alias="minSuccessRatio", description="Answers 2xx, of all."
    )
    min_throughput: float | None = Field(
        default=None, gt=0, alias="minThroughput", description="Successful answers per second."
    )

    @model_validator(mode="after")
    def _one_at_least(self) -> LoadThresholds:
        if all(value is None for value in self.model_dump().values()):
            raise ValueError(
                "loadTest.thresholds needs at least one of p50Ms, p99Ms, minSuccessRatio, "
                "minThroughput: a load test without one cannot fail"
            )
        return self


class LoadTest(Strict):
    rate: int | None = Field(
        default=None, ge=1, le=10_000, description="Requests per second, whatever the latency."
    )
    concurrency: int | None = Field(
        default=None, ge=1, le=1000, description="Clients, each sending as soon as answered."
    )
    duration_seconds: float = Field(default=10, ge=1, le=600, alias="durationSeconds")
    timeout_seconds: float = Field(default=5, gt=0, le=60, alias="timeoutSeconds")
    path: str = Field(default="/predict", pattern=r"^/[^\s]*$")
    body: dict[str, Any] = Field(description="The request, as JSON.")
    thresholds: LoadThresholds

    @model_validator(mode="after")
    def _one_load(self) -> LoadTest:
        if (self.rate is None) == (self.concurrency is None):
            raise ValueError(
                "loadTest needs exactly one of rate (requests per second: an open load) "
                "or concurrency (clients sending in turn: a closed load)"
            )
        return self
