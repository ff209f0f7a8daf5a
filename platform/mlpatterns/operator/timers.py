"""The operator's timers: each rollout driven every `--rollout-tick` seconds, each
ModelService's registry references looked up every `--registry-poll` seconds, and
Seldon Core's report of a `router: seldon` ModelService read every 10 seconds.
Registered by `mlpatterns operator run`, which knows the intervals; thin, as the
event handlers are: the decisions are `rollout.decide`'s and `operator.models`'."""

from __future__ import annotations

from typing import Any

import kopf

from mlpatterns.api.rollout import RolloutStatus
from mlpatterns.operator.handlers import (
    InvalidSpecError,
    operator_of,
    parse,
    refresh_from_workloads,
    sync,
)
from mlpatterns.operator.kube import GROUP, PLURAL, VERSION
from mlpatterns.operator.rollout import COMMAND_ANNOTATION, post, tick
from mlpatterns.registry.resolve import described, resolve_models
from mlpatterns.rollout.status import status_data

__all__ = ["drive_rollout", "follow_models", "follow_seldon", "register_timers"]


def drive_rollout(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The rollout timer (registered by `operator run` with its --rollout-tick)."""
    operator = operator_of(memo)
    try:
        service = parse(body, operator.config.admission)
    except InvalidSpecError:
        return  # its Degraded status was written when the spec was handled
    if service.spec.rollout is None:
        return
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    router = (body.get("status") or {}).get("router") or "gateway"
    recorded, status, told = tick(service, body, operator.figures, router)
    if COMMAND_ANNOTATION in (meta.get("annotations") or {}):
        operator.kube.annotate(namespace, name, {COMMAND_ANNOTATION: None})
    post(body, told)
    if status == recorded:
        return
    written = status_data(status)
    operator.kube.patch_status(namespace, name, {"rollout": written})
    moved = recorded is None or _routing(recorded) != _routing(status)
    if moved:
        sync({**body, "status": {**(body.get("status") or {}), "rollout": written}}, operator)


def follow_models(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The registry timer (registered by `operator run` with its --registry-poll):
    reconcile when a version's registry reference names another model than the one
    its pods load; write nothing otherwise."""
    operator = operator_of(memo)
    try:
        service = parse(body, operator.config.admission)
    except InvalidSpecError:
        return
    if operator.registry is None:
        return
    now = described(resolve_models(service, operator.registry))
    if now and now != (body.get("status") or {}).get("models"):
        sync(body, operator)


def follow_seldon(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The Seldon timer: under router seldon, Seldon Core's operator makes the
    Deployments, and reports them only in the SeldonDeployment's status, which no
    watch of this operator sees; it becomes the ModelService's (written when changed)."""
    if (body.get("status") or {}).get("router") == "seldon":
        refresh_from_workloads(operator_of(memo), body)


def register_timers(rollout_tick: float, registry_poll: float, seldon_poll: float = 10) -> None:
    """Drive every rollout every `rollout_tick` seconds; look up every ModelService's
    registry references every `registry_poll` seconds; read Seldon Core's report of a
    `router: seldon` ModelService every `seldon_poll` seconds."""
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        interval=rollout_tick,
        when=lambda spec, **_: bool(spec.get("rollout")),
    )(drive_rollout)
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        interval=registry_poll,
        when=lambda spec, **_: "models:/" in str(spec.get("versions")),
    )(follow_models)
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        interval=seldon_poll,
        when=lambda spec, **_: spec.get("router") == "seldon",
    )(follow_seldon)


def _routing(status: RolloutStatus) -> tuple[str, str, int, bool]:
    """What of a rollout's status changes the objects rendered (traffic, replicas)."""
    return (status.revision, status.phase, status.step, status.previous_retired)
