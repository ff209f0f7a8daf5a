"""The operator's decisions, as plain functions: which objects to write and delete,
and what the status says. No API calls here; `kube.py` is the edge.

A reconcile compares each desired object's content digest (an annotation render
sets) with the live object's, so a second reconcile with nothing changed writes
nothing. Objects labelled as this ModelService's but no longer desired (a version
that left the spec, a router that changed) are deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlpatterns.api.modelservice import ModelService
from mlpatterns.operator.pods import PodFailure
from mlpatterns.render import object_key
from mlpatterns.render.common import HASH_ANNOTATION
from mlpatterns.routing.table import RouteTable

__all__ = [
    "FIELD_MANAGER",
    "MANAGED_KINDS",
    "USER_METADATA",
    "Changes",
    "Key",
    "digests",
    "merged",
    "plan_changes",
    "problem_status",
    "resource_data",
    "status_changed",
    "status_of",
    "with_transition_times",
]

FIELD_MANAGER = "mlpatterns-operator"
USER_METADATA = ("name", "namespace", "labels")
MANAGED_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("apps/v1", "Deployment"),
    ("machinelearning.seldon.io/v1", "SeldonDeployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("batch/v1", "CronJob"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "VirtualService"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
)

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Changes:
    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[Key] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.apply and not self.delete


def _digest(item: dict[str, Any]) -> str | None:
    annotations = item.get("metadata", {}).get("annotations") or {}
    value = annotations.get(HASH_ANNOTATION)
    return str(value) if value is not None else None


def plan_changes(
    desired: Sequence[dict[str, Any]],
    live: Sequence[dict[str, Any]],
    applied: Mapping[Key, str] | None = None,
) -> Changes:
    """What to write and delete. `live` may come from the API server's cache, a
    little behind; `applied` is what this operator last wrote (digest by object), so
    an object is written when either differs from the desired one, and what was
    written but is not yet in the cache is still pruned."""
    applied = applied or {}
    live_digest = {object_key(item): _digest(item) for item in live}
    wanted = {object_key(item) for item in desired}
    apply = []
    for item in desired:
        key, digest = object_key(item), _digest(item)
        if live_digest.get(key, "") != digest or applied.get(key, digest) != digest:
            apply.append(item)
    delete = sorted(key for key in set(live_digest) | set(applied) if key not in wanted)
    return Changes(apply, delete)


def digests(objects: Sequence[dict[str, Any]]) -> dict[Key, str]:
    return {object_key(item): _digest(item) or "" for item in objects}


# ---- status --------------------------------------------------------------------


def _condition(kind: str, status: bool, reason: str, message: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def _ready_counts(deployments: Sequence[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Deployment name -> (ready replicas, desired replicas)."""
    counts = {}
    for item in deployments:
        desired = int((item.get("spec") or {}).get("replicas", 1))
        ready = int((item.get("status") or {}).get("readyReplicas") or 0)
        counts[item["metadata"]["name"]] = (ready, desired)
    return counts


def _version_status(
    service: ModelService, counts: dict[str, tuple[int, int]]
) -> list[dict[str, Any]]:
    name = service.metadata.name
    found = []
    for version in service.spec.versions:
        prefix = f"{name}-{version.name}"
        mine = [c for n, c in counts.items() if n == prefix or n.startswith(f"{prefix}-")]
        found.append(
            {
                "name": version.name,
                "replicas": sum(d for _, d in mine),
                "readyReplicas": sum(r for r, _ in mine),
            }
        )
    return found


def problem_status(reason: str, message: str, generation: int | None) -> dict[str, Any]:
    """Conditions for a spec that cannot be applied; the rest of the status (the
    weights in force) stays as it was, since nothing was changed."""
    return {
        "conditions": [
            _condition("Ready", False, reason, message),
            _condition("Progressing", False, reason, "fix the spec; nothing was changed"),
            _condition("Degraded", True, reason, message),
        ],
        "observedGeneration": generation,
    }


def status_of(
    service: ModelService,
    table: RouteTable,
    deployments: Sequence[dict[str, Any]],
    *,
    router: str,
    generation: int | None,
    has_cronjob: bool = False,
    failures: Sequence[PodFailure] = (),
) -> dict[str, Any]:
    """The status a ModelService shows once its objects are applied; `failures` (of its
    pods) make it Degraded with their reason and what the failing containers said."""
    counts = _ready_counts(deployments)
    ready = sum(r for r, _ in counts.values())
    desired = sum(d for _, d in counts.values())
    if service.spec.pattern == "batch":
        scheduled = has_cronjob
        conditions = [
            _condition(
                "Ready",
                scheduled,
                "Scheduled" if scheduled else "Pending",
                "the batch CronJob is in place" if scheduled else "creating the CronJob",
            ),
            _condition("Progressing", not scheduled, "Applied", ""),
            _condition("Degraded", False, "AsExpected", ""),
        ]
    else:
        all_ready = bool(counts) and all(r >= d for r, d in counts.values())
        waiting = sorted(n for n, (r, d) in counts.items() if r < d)
        conditions = [
            _condition(
                "Ready",
                all_ready,
                "AllReady" if all_ready else "NotReady",
                f"{ready}/{desired} replicas ready"
                + ("" if all_ready else f"; waiting for {', '.join(waiting) or 'deployments'}"),
            ),
            _condition(
                "Progressing", not all_ready, "RollingOut" if not all_ready else "Stable", ""
            ),
            _degraded(failures),
        ]
    default = table.routes[-1]
    return {
        "conditions": conditions,
        "versions": _version_status(service, counts),
        "versionNames": ",".join(v.name for v in service.spec.versions),
        "ready": f"{ready}/{desired}",
        "router": router,
        "weights": {d.version: d.weight for d in default.destinations},
        "split": ",".join(f"{d.version}={d.weight}" for d in default.destinations),
        "shadow": f"{table.mirror[0]}:{table.mirror[1]:g}%" if table.mirror else "-",
        "observedGeneration": generation,
    }


def _degraded(failures: Sequence[PodFailure]) -> dict[str, Any]:
    if not failures:
        return _condition("Degraded", False, "AsExpected", "")
    shown = "; ".join(f"{f.version}: {f.message}" for f in failures[:3])
    more = f" (and {len(failures) - 3} more pods)" if len(failures) > 3 else ""
    return _condition("Degraded", True, failures[0].reason, shown + more)


def with_transition_times(
    new: dict[str, Any], old: dict[str, Any] | None, now: datetime | None = None
) -> dict[str, Any]:
    """Keep a condition's lastTransitionTime unless its status changed."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = {c.get("type"): c for c in (old or {}).get("conditions", [])}
    conditions = []
    for condition in new["conditions"]:
        previous = before.get(condition["type"])
        same = previous is not None and previous.get("status") == condition["status"]
        kept = previous.get("lastTransitionTime") if same and previous else None
        conditions.append({**condition, "lastTransitionTime": kept or stamp})
    return {**new, "conditions": conditions}


def merged(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    return {**(old or {}), **new}


def status_changed(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    def bare(status: dict[str, Any] | None) -> dict[str, Any]:
        status = dict(status or {})
        status["conditions"] = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in status.get("conditions", [])
        ]
        return status

    return bare(new) != bare(old)


def resource_data(
    body: Mapping[str, Any], metadata: Sequence[str] = USER_METADATA
) -> dict[str, Any]:
    """The ModelService `body` as a user wrote it: no status, and of its metadata only
    the keys named (not the server's uid, generation and managed fields)."""
    data = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    meta = dict(data.get("metadata") or {})
    data["metadata"] = {k: meta[k] for k in metadata if k in meta}
    return data
