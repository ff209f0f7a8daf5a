"""The operator's rollout tick: the edges around `mlpatterns.rollout.decide` in a
cluster, as `local/rollout.py` is on one machine.

Every tick, for each ModelService with `spec.rollout`: take a command left in the
annotation `rollout.mlpatterns.io/command` (by `kubectl mlpatterns rollout ...`),
analyse the candidate when an interval has passed (counts, latency and drift from
Prometheus or else straight from the pods, shadow pairs and feedback from the log
streams the operator can read), write
`status.rollout`, post each transition as an Event, and when the phase or the step
moved, reconcile: the routes in force (VirtualService, the gateway's ConfigMap)
follow `in_force`. Nothing is written when nothing changed.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from mlpatterns.api.modelservice import ModelService
from mlpatterns.api.rollout import RolloutStatus
from mlpatterns.logstreams import Place, Stream
from mlpatterns.operator.scrape import PodMetrics
from mlpatterns.rollout.decide import (
    COMMANDS,
    Command,
    Observation,
    advance,
    analysis_due,
    analysis_since,
)
from mlpatterns.rollout.observe import VersionCounts, bucket_quantile, observation
from mlpatterns.rollout.promql import queries, scalar, signals
from mlpatterns.rollout.status import status_from

__all__ = ["COMMAND_ANNOTATION", "Prometheus", "RolloutFigures", "command_of", "post", "tick"]

COMMAND_ANNOTATION = "rollout.mlpatterns.io/command"
log = logging.getLogger("mlpatterns.operator.rollout")


@dataclass(frozen=True)
class Prometheus:
    url: str
    timeout: float = 10.0

    def ask(self, query: str) -> dict[str, Any]:
        address = f"{self.url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(address, timeout=self.timeout) as answer:  # noqa: S310
            found: dict[str, Any] = json.loads(answer.read())
        return found


@dataclass(frozen=True)
class RolloutFigures:
    """Where the operator reads a candidate's figures: Prometheus when configured,
    else straight from the pods (`PodMetrics`); and the log streams."""

    prometheus: Prometheus | None
    logs: Place | None
    pods: PodMetrics | None = None


def command_of(body: Mapping[str, Any]) -> Command | None:
    wanted = ((body.get("metadata") or {}).get("annotations") or {}).get(COMMAND_ANNOTATION)
    return next((c for c in COMMANDS if c == wanted), None)


def _asked(
    prometheus: Prometheus, router: str, namespace: str, name: str, version: str, window: float
) -> tuple[VersionCounts, float | None, tuple[str, ...]]:
    asked = queries(router, namespace, name, version, window)
    values = {k: scalar(prometheus.ask(q)) for k, q in asked.items() if k != "drift"}
    counts = VersionCounts(
        requests=values["requests"] or 0.0,
        errors=values["errors"] or 0.0,
        shadow_errors=values["shadow_errors"] or 0.0,
    )
    return counts, values["p99"], signals(prometheus.ask(asked["drift"]))


def _scraped(
    pods: PodMetrics, router: str, status: RolloutStatus, namespace: str, name: str, now: datetime
) -> tuple[VersionCounts, float | None, tuple[str, ...]] | None:
    version, since = status.candidate, analysis_since(status)
    counts = pods.read(namespace, name, router, version, counts_from=since, taken_at=now)
    if counts is None:
        return None
    return counts, bucket_quantile(0.99, counts.buckets), pods.drift(namespace, name, version)


def _observe(
    figures: RolloutFigures,
    service: ModelService,
    status: RolloutStatus,
    router: str,
    now: datetime,
) -> Observation | None:
    namespace, name = service.metadata.namespace or "default", service.metadata.name
    try:
        if figures.prometheus is not None:
            window = (now - analysis_since(status)).total_seconds()
            read = _asked(figures.prometheus, router, namespace, name, status.candidate, window)
        elif figures.pods is not None:
            found = _scraped(figures.pods, router, status, namespace, name, now)
            if found is None:
                return None
            read = found
        else:
            return None
    except (OSError, ValueError) as error:
        log.warning("rollout %s: its figures could not be read: %s", name, error)
        return None
    counts, p99, drift = read
    step_start = datetime.fromisoformat(status.step_started_at)
    predictions: list[dict[str, Any]] = []
    feedback: list[dict[str, Any]] = []
    if figures.logs is not None:
        predictions = figures.logs.read(Stream.PREDICTIONS, name, step_start).items
        feedback = figures.logs.read(Stream.FEEDBACK, name, step_start).items
    assert service.spec.rollout is not None
    step = service.spec.rollout.steps[status.step]
    return observation(step, status, counts, p99, predictions, feedback, drift)


def tick(
    service: ModelService,
    body: Mapping[str, Any],
    figures: RolloutFigures,
    router: str,
    now: datetime | None = None,
) -> tuple[RolloutStatus | None, RolloutStatus, list[Any]]:
    """The recorded status, the next one, and what happened (transitions)."""
    now = now or datetime.now(UTC)
    rollout = service.spec.rollout
    assert rollout is not None
    recorded = status_from((body.get("status") or {}).get("rollout"))
    model = ((body.get("status") or {}).get("models") or {}).get(rollout.candidate, "")
    status, told = advance(service, recorded, now, command=command_of(body), model=model)
    pods = figures.pods if figures.prometheus is None else None
    namespace, name, since = (
        service.metadata.namespace or "default",
        service.metadata.name,
        analysis_since(status),
    )
    if status.phase != "Progressing":
        if pods is not None:
            pods.forget(namespace, name)
    elif pods is not None and pods.taken_at(namespace, name) != since:
        # the baseline this step's (or this interval's) counts begin from
        pods.read(namespace, name, router, status.candidate, counts_from=since, taken_at=since)
    elif analysis_due(status, rollout.analysis, now):
        seen = _observe(figures, service, status, router, now)
        if seen is not None:
            status, analysed = advance(service, status, now, observation=seen, model=model)
            told += analysed
    return recorded, status, told


def post(body: Mapping[str, Any], told: list[Any]) -> None:
    for transition in told:
        event = kopf.warn if transition.warning else kopf.info
        reason = f"Rollout{transition.reason}"
        event(cast(Any, dict(body)), reason=reason, message=transition.message)
