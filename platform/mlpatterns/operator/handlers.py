"""The kopf handlers: thin. Each reads what changed, calls `sync` (render, compare,
apply, status) and lets kopf retry on transient failures. An invalid spec is a
Degraded condition and a Warning event, never a crash loop: it is not retried
until the spec changes.

The process's configuration and state (`Operator`: the options it was started with,
its API client, what it last applied) reach every handler as kopf's memo, which
`mlpatterns operator run` passes to `kopf.run`; nothing is kept in module globals."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import kopf

from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.lint.services import DESCRIPTION_ANNOTATION, IGNORE_ANNOTATION, OWNER_ANNOTATION
from mlpatterns.logstreams import place
from mlpatterns.operator.kube import GROUP, PLURAL, VERSION, Kube
from mlpatterns.operator.lint import REASON as LINT_REASON
from mlpatterns.operator.lint import anti_patterns, event_message
from mlpatterns.operator.pods import pod_failures
from mlpatterns.operator.policy import AdmissionPolicy, problems
from mlpatterns.operator.reconcile import (
    Key,
    digests,
    merged,
    plan_changes,
    problem_status,
    resource_data,
    status_changed,
    status_of,
    with_transition_times,
)
from mlpatterns.operator.rollout import Prometheus, RolloutFigures
from mlpatterns.operator.scrape import PodMetrics
from mlpatterns.operator.seldon import seldon_failures, seldon_workloads
from mlpatterns.registry.registry import Registry
from mlpatterns.registry.resolve import described, resolve_models
from mlpatterns.render import RenderOptions, render, seldon
from mlpatterns.render.common import SERVICE_LABEL
from mlpatterns.rollout.decide import in_force
from mlpatterns.rollout.status import status_from
from mlpatterns.routing.table import RouteTable, RoutingError, compile_table
from mlpatterns.settings import load_settings

__all__ = [
    "ANNOTATIONS",
    "InvalidSpecError",
    "Operator",
    "OperatorConfig",
    "configure",
    "deployment_changed",
    "forget",
    "operator_of",
    "parse",
    "pod_changed",
    "reconcile",
    "refresh_from_workloads",
    "refresh_status",
    "resolve_router",
    "show_workload",
    "sync",
    "warn_anti_patterns",
]

ANNOTATIONS = "operator.mlpatterns.io"


@dataclass(frozen=True)
class OperatorConfig:
    """What `mlpatterns operator run` was told."""

    router: Literal["auto", "istio", "gateway"] = "auto"
    image: str = RenderOptions().image
    seldon_image: str = RenderOptions().seldon_image
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    storage_secret: str | None = None
    redis_url: str = RenderOptions().redis_url
    redis_secret: str | None = None
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    prometheus_url: str | None = None


@dataclass
class Operator:
    """One operator process: its configuration, its API client (made on first use,
    inside kopf's loop), and what it last applied per ModelService (the informer's
    cache may lag behind its own writes)."""

    config: OperatorConfig
    applied: dict[tuple[str, str], dict[Key, str]] = field(default_factory=dict)
    _kube: Kube | None = None
    _figures: RolloutFigures | None = None
    _registry: Registry | None = None

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube()
        return self._kube

    @property
    def registry(self) -> Registry | None:
        """The registry of the operator's settings, read only, to resolve references:
        the object store when MLPATTERNS_S3_* are set, else an existing registry folder
        under MLPATTERNS_HOME; None when there is neither."""
        if self._registry is None:
            settings = load_settings()
            if settings.uses_object_storage or (settings.home / "registry").is_dir():
                self._registry = Registry.from_settings(settings)
        return self._registry

    @property
    def figures(self) -> RolloutFigures:
        """Where rollouts read their figures: Prometheus, if configured, else the pods'
        own metrics; and the log streams of the operator's settings (the object store
        when MLPATTERNS_S3_* are set)."""
        if self._figures is None:
            url = self.config.prometheus_url
            prometheus = Prometheus(url) if url else None
            pods = None if url else PodMetrics(self.kube.pods)
            self._figures = RolloutFigures(prometheus, place(load_settings()), pods)
        return self._figures


def operator_of(memo: Any) -> Operator:
    """The `Operator` that `mlpatterns operator run` put in kopf's memo."""
    found = getattr(memo, "operator", None)
    if not isinstance(found, Operator):
        raise kopf.PermanentError("run the operator with `mlpatterns operator run`")
    return found


class InvalidSpecError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse(body: Mapping[str, Any], admission: AdmissionPolicy) -> ModelService:
    data = resource_data(body)
    try:
        service = parse_model_service(data, f"ModelService {data['metadata'].get('name')}")
        compile_table(service)
    except (ModelServiceError, RoutingError) as error:
        raise InvalidSpecError("InvalidSpec", str(error)) from None
    refused = problems(service, admission)
    if refused:
        raise InvalidSpecError("NotAllowed", "; ".join(refused))
    return service


def resolve_router(cluster: Kube, service: ModelService, default: str) -> str:
    wanted = service.spec.router or default
    if wanted == "seldon":
        if not cluster.serves(seldon.API_VERSION, seldon.KIND):
            raise InvalidSpecError(
                "SeldonMissing",
                f"spec.router is seldon, but this cluster serves no {seldon.API_VERSION} "
                f"{seldon.KIND}; install Seldon Core 1.17 or choose router gateway or istio",
            )
        return wanted
    has_istio = cluster.serves("networking.istio.io/v1", "VirtualService")
    if wanted == "auto":
        return "istio" if has_istio else "gateway"
    if wanted == "istio" and not has_istio:
        raise InvalidSpecError(
            "IstioMissing",
            "spec.router is istio, but this cluster serves no networking.istio.io/v1 "
            "VirtualService; install Istio or set spec.router: gateway",
        )
    return wanted


def sync(body: Mapping[str, Any], operator: Operator) -> int:
    """Make the cluster match one ModelService; the number of objects written or deleted."""
    cluster, config = operator.kube, operator.config
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        service = parse(body, config.admission)
        router = resolve_router(cluster, service, config.router)
    except InvalidSpecError as error:
        problem = (error.reason, error.message)
        refresh_status(cluster, body, None, None, router="-", problem=problem)
        kopf.warn(_event_target(body), reason=error.reason, message=error.message)
        raise kopf.PermanentError(error.message) from None
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelService",
        "name": name,
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    options = RenderOptions(
        namespace=namespace,
        image=config.image,
        seldon_image=config.seldon_image,
        image_pull_policy=config.image_pull_policy,
        image_pull_secrets=config.image_pull_secrets,
        router="gateway" if router == "gateway" else "istio",
        monitoring=cluster.serves("monitoring.coreos.com/v1", "ServiceMonitor"),
        redis_url=config.redis_url,
        redis_secret=config.redis_secret,
        storage_secret=config.storage_secret,
        owner=owner,
        models=resolve_models(service, operator.registry) if operator.registry else {},
    )
    service = in_force(service, status_from((body.get("status") or {}).get("rollout")))
    desired = render(service, options)
    memory = operator.applied.setdefault((namespace, name), {})
    changes = plan_changes(desired, cluster.owned(namespace, name), memory)
    try:
        cluster.apply(namespace, changes)
    except LookupError as error:
        problem = ("ApplyFailed", str(error))
        refresh_status(cluster, body, service, None, router=router, problem=problem)
        kopf.warn(_event_target(body), reason="ApplyFailed", message=str(error))
        raise kopf.TemporaryError(str(error), delay=30) from None
    memory.clear()
    memory.update(digests(desired))
    if not changes.empty:
        kopf.info(
            _event_target(body),
            reason="Applied",
            message=f"wrote {len(changes.apply)} objects, deleted {len(changes.delete)}",
        )
    models = described(dict(options.models))
    refresh_status(cluster, body, service, compile_table(service), router=router, models=models)
    return len(changes.apply) + len(changes.delete)


def refresh_status(
    cluster: Kube,
    body: Mapping[str, Any],
    service: ModelService | None,
    table: RouteTable | None,
    *,
    router: str,
    problem: tuple[str, str] | None = None,
    pod: Mapping[str, Any] | None = None,
    models: Mapping[str, str] | None = None,
) -> None:
    """Write the status when it changed; `problem` (reason, message) keeps the rest;
    `pod`, from an event, stands in for its possibly older copy in the listed pods;
    `models` (what each version serves, resolved) when the spec was rendered."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if problem is not None or service is None or table is None:
        reason, message = problem or ("Unknown", "")
        status = problem_status(reason, message, meta.get("generation"))
    else:
        has_cronjob = service.spec.pattern == "batch" and any(
            o["kind"] == "CronJob" for o in cluster.owned(namespace, name)
        )
        if router == "seldon":  # Seldon Core's operator runs the pods and reports them
            made = cluster.get(seldon.API_VERSION, seldon.KIND, namespace, name)
            workloads, failures = seldon_workloads(made), seldon_failures(made)
        else:
            workloads = cluster.deployments(namespace, name)
            failures = pod_failures(_with_pod(cluster.pods(namespace, name), pod))
        status = status_of(
            service,
            table,
            workloads,
            router=router,
            generation=meta.get("generation"),
            has_cronjob=has_cronjob,
            failures=failures,
        )
        if models is not None:
            status["models"] = dict(models)
    # the rollout's part is the rollout timer's alone: a merge patch without it keeps it
    old = {k: v for k, v in (body.get("status") or {}).items() if k != "rollout"}
    new = with_transition_times(merged(status, old), old)
    if status_changed(new, old):
        cluster.patch_status(namespace, name, new)


def _with_pod(pods: list[dict[str, Any]], pod: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if pod is None:
        return list(pods)
    name = pod.get("metadata", {}).get("name")
    return [p for p in pods if p.get("metadata", {}).get("name") != name] + [pod]


def _event_target(body: Mapping[str, Any]) -> Any:
    # kopf's event helpers read only the body's apiVersion, kind and metadata
    return dict(body)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATIONS)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATIONS, key="last-handled-configuration"
    )
    # what it serves exists when it starts (the chart installs the CRD first): no
    # watching of CRDs and namespaces cluster-wide, which its least-privilege role
    # forbids, and which kopf would retry for a minute before handling anything
    settings.scanning.disabled = True
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 120
    settings.networking.request_timeout = 30
    # kopf waits this long for more events of an object before handling it; its
    # default (0.1 s) is most of a traffic switch's latency here
    settings.batching.batch_window = 0.02


# a handler that fails is retried after RETRY_SECONDS (kopf's default is 60 s): until it
# succeeds, kopf holds every later change of the spec, a traffic switch included
RETRY_SECONDS = 5


@kopf.on.resume(GROUP, VERSION, PLURAL, backoff=RETRY_SECONDS)
@kopf.on.create(GROUP, VERSION, PLURAL, backoff=RETRY_SECONDS)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", backoff=RETRY_SECONDS)
def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    sync(body, operator_of(memo))


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.update(GROUP, VERSION, PLURAL, field=("metadata", "annotations", OWNER_ANNOTATION))
@kopf.on.update(GROUP, VERSION, PLURAL, field=("metadata", "annotations", DESCRIPTION_ANNOTATION))
@kopf.on.update(GROUP, VERSION, PLURAL, field=("metadata", "annotations", IGNORE_ANNOTATION))
def warn_anti_patterns(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The lint's findings on the ModelService, as Warning Events on it."""
    for finding in anti_patterns(body, operator_of(memo).registry):
        kopf.warn(_event_target(body), reason=LINT_REASON, message=event_message(finding))


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": "mlpatterns"})
def deployment_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A Deployment's readiness moved: show it in its ModelService's status."""
    show_workload(operator_of(memo), body, type)


@kopf.on.event("", "v1", "pods", labels={"app.kubernetes.io/managed-by": "mlpatterns"})
def pod_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A pod's containers changed state: one that cannot run makes its ModelService
    Degraded. The event's pod is newer than a list from the API server's cache."""
    show_workload(operator_of(memo), body, type, pod=body)


def show_workload(
    operator: Operator,
    body: Mapping[str, Any],
    type: str | None,
    pod: Mapping[str, Any] | None = None,
) -> None:
    meta = body.get("metadata", {})
    owner = (meta.get("labels") or {}).get(SERVICE_LABEL)
    if owner is None or type is None:
        return
    cluster = operator.kube
    found = cluster.get_model_service(meta["namespace"], owner)
    if found is not None:
        refresh_from_workloads(operator, found, pod)


def refresh_from_workloads(
    operator: Operator, found: Mapping[str, Any], pod: Mapping[str, Any] | None = None
) -> None:
    """Write a ModelService's status anew from its workloads, its spec as last handled."""
    try:
        service = parse(found, operator.config.admission)
    except InvalidSpecError:
        return  # its Degraded status was written when the spec was handled
    status = found.get("status") or {}
    table = compile_table(in_force(service, status_from(status.get("rollout"))))
    router = status.get("router", "-")
    refresh_status(operator.kube, found, service, table, router=router, pod=pod)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)  # optional: no finalizer is added
def forget(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Its objects go with it (owner references); only this process's memory stays."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    operator_of(memo).applied.pop(key, None)
