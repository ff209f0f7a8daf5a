"""The operator's rollout tick: the edges around `mlpatterns.rollout.decide` in a
cluster, as `local/rollout.py` is on one machine.

Every tick, for each ModelService with `spec.rollout`: take a command left in the
annotation `rollout.mlpatterns.io/command` (by `kubectl mlpatterns rollout ...`),
analyse the candidate when an interval has passed (figures from Prometheus, and
shadow pairs and feedback from the log streams the operator can read), write
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
from mlpatterns.rollout.decide import COMMANDS, Command, Observation, advance, analysis_due
from mlpatterns.rollout.observe import VersionCounts, observation
from mlpatterns.rollout.promql import queries, scalar, signals
from mlpatterns.rollout.status import status_from

__all__ = ["COMMAND_ANNOTATION", "Prometheus", "RolloutFigures", "command_of", "post", "tick"]

COMMAND_ANNOTATION = "rollout.mlpatterns.io/command"
NO_PROMETHEUS = "waiting: the operator reads no Prometheus (operator run --prometheus-url)"
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
    """Where the operator reads a candidate's figures: Prometheus (None: no analysis
    can pass, and the status says why) and the log streams."""

    prometheus: Prometheus | None
    logs: Place | None


def command_of(body: Mapping[str, Any]) -> Command | None:
    wanted = ((body.get("metadata") or {}).get("annotations") or {}).get(COMMAND_ANNOTATION)
    return next((c for c in COMMANDS if c == wanted), None)


def _observe(
    figures: RolloutFigures,
    service: ModelService,
    status: RolloutStatus,
    router: str,
    window: float,
) -> Observation | None:
    if figures.prometheus is None:
        return None
    namespace = service.metadata.namespace or "default"
    asked = queries(router, namespace, service.metadata.name, status.candidate, window)
    try:
        values = {k: scalar(figures.prometheus.ask(q)) for k, q in asked.items() if k != "drift"}
        drift = signals(figures.prometheus.ask(asked["drift"]))
    except (OSError, ValueError) as error:
        log.warning("rollout %s: Prometheus did not answer: %s", service.metadata.name, error)
        return None
    counts = VersionCounts(
        requests=values["requests"] or 0.0,
        errors=values["errors"] or 0.0,
        shadow_errors=values["shadow_errors"] or 0.0,
    )
    step_start = datetime.fromisoformat(status.step_started_at)
    predictions: list[dict[str, Any]] = []
    feedback: list[dict[str, Any]] = []
    if figures.logs is not None:
        name = service.metadata.name
        predictions = figures.logs.read(Stream.PREDICTIONS, name, step_start).items
        feedback = figures.logs.read(Stream.FEEDBACK, name, step_start).items
    assert service.spec.rollout is not None
    step = service.spec.rollout.steps[status.step]
    return observation(step, status, counts, values["p99"], predictions, feedback, drift)


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
    if analysis_due(status, rollout.analysis, now):
        last = status.last_analysis
        since = datetime.fromisoformat(
            last.time if last is not None and last.step == status.step else status.step_started_at
        )
        window = (now - since).total_seconds()
        seen = _observe(figures, service, status, router, window)
        if seen is None and figures.prometheus is None and NO_PROMETHEUS not in status.message:
            status = status.model_copy(update={"message": f"{status.message}; {NO_PROMETHEUS}"})
        if seen is not None:
            status, analysed = advance(service, status, now, observation=seen, model=model)
            told += analysed
    return recorded, status, told


def post(body: Mapping[str, Any], told: list[Any]) -> None:
    for transition in told:
        event = kopf.warn if transition.warning else kopf.info
        reason = f"Rollout{transition.reason}"
        event(cast(Any, dict(body)), reason=reason, message=transition.message)
