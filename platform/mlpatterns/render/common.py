"""What every rendered object shares: names, labels, the pod's least-privilege
security settings, probes, and the containers' common shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlpatterns import __version__
from mlpatterns.api.modelservice import ModelService, Resources, Version
from mlpatterns.api.resolved import ResolvedModel
from mlpatterns.topology import Port

__all__ = [
    "HASH_ANNOTATION",
    "METRICS_LABEL",
    "MODELS",
    "MODEL_ANNOTATION",
    "PORT",
    "ROUTED_LABEL",
    "SERVICE_LABEL",
    "STATE",
    "USER",
    "RenderOptions",
    "container",
    "container_security",
    "env_from",
    "labels",
    "listening",
    "metadata",
    "pod_security",
    "pod_volumes",
    "probes",
    "pull_secrets",
    "resources",
    "router_of",
    "selector",
    "service_object",
]

PORT = 8080
STATE = "/var/lib/mlpatterns"  # MLPATTERNS_HOME: prediction logs, the model cache
MODELS = "/models"
SERVICE_LABEL = "mlpatterns.io/service"
DRAIN_SECONDS = "5"  # within the pod's default 30 s of termination grace
ROUTED_LABEL = "mlpatterns.io/routed"  # pods that answer the service's traffic
METRICS_LABEL = "mlpatterns.io/metrics"
HASH_ANNOTATION = "mlpatterns.io/desired-hash"
MODEL_ANNOTATION = "mlpatterns.io/model-sha256"  # on a pod template: a new model rolls it
USER = 10001


@dataclass(frozen=True)
class RenderOptions:
    """What the cluster offers, decided by whoever renders (the operator or the CLI)."""

    namespace: str | None = None
    image: str = f"mlpatterns-serving:{__version__}"  # the generic serving image
    seldon_image: str = f"mlpatterns-seldon:{__version__}"  # Seldon's wrapper on a model
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()  # Secrets for pulling the pods' images
    router: Literal["istio", "gateway"] = "istio"  # when the ModelService does not say
    monitoring: bool = False  # the Prometheus Operator's CRDs exist
    redis_url: str = "redis://mlpatterns-redis:6379/0"  # the platform chart's Redis
    redis_secret: str | None = None  # its password, key redis-password
    storage_secret: str | None = None  # default Secret with MLPATTERNS_S3_*
    owner: dict[str, Any] | None = field(default=None)  # an ownerReference to set
    models: Mapping[str, ResolvedModel] = field(default_factory=dict)  # by version name


def router_of(service: ModelService, options: RenderOptions) -> str:
    return service.spec.router or options.router


def labels(service: ModelService, component: str, instance: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": service.metadata.name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "mlpatterns",
        "app.kubernetes.io/managed-by": "mlpatterns",
        SERVICE_LABEL: service.metadata.name,
    }


def selector(service: ModelService, instance: str) -> dict[str, str]:
    return {SERVICE_LABEL: service.metadata.name, "app.kubernetes.io/instance": instance}


def metadata(name: str, object_labels: dict[str, str], options: RenderOptions) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(object_labels)}
    if options.namespace:
        meta["namespace"] = options.namespace
    if options.owner:
        meta["ownerReferences"] = [options.owner]
    return meta


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pull_secrets(options: RenderOptions) -> dict[str, Any]:
    """A pod spec's imagePullSecrets, when the options name any."""
    if not options.image_pull_secrets:
        return {}
    return {"imagePullSecrets": [{"name": name} for name in options.image_pull_secrets]}


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": USER,
        "runAsGroup": USER,
        "fsGroup": USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(wanted: Resources) -> dict[str, Any]:
    return {
        "requests": {"cpu": wanted.cpu, "memory": wanted.memory},
        "limits": {"cpu": wanted.cpu_limit, "memory": wanted.memory_limit},
    }


def probes(port: str, ready: str | None, live: str) -> dict[str, Any]:
    """Probes on the named port: readiness (when the component has one) and liveness."""

    def probe(path: str, period: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": port},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        }

    found = {"readinessProbe": probe(ready, 5)} if ready else {}
    return {**found, "livenessProbe": probe(live, 10)}


def listening(main: dict[str, Any], port: Port, number: int) -> dict[str, Any]:
    """`main` with the component's one port and the probes that ask it."""
    main["ports"] = [{"name": port.name, "containerPort": number, "protocol": "TCP"}]
    main.update(probes(port.name, port.ready, port.live))
    return main


def env_from(service: ModelService, options: RenderOptions) -> list[dict[str, Any]]:
    """Credentials reach pods only as environment from a Secret, never in the spec."""
    secret = service.spec.storage.secret_name if service.spec.storage else options.storage_secret
    return [{"secretRef": {"name": secret}}] if secret else []


def container(
    name: str,
    image: str,
    arguments: list[str],
    service: ModelService,
    version: Version,
    options: RenderOptions,
    *,
    command: list[str] | None = None,
    mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A container of the pod's common shape; the caller adds its ports and probes."""
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": options.image_pull_policy,
    }
    if command is not None:
        spec["command"] = command
    spec["args"] = arguments
    spec["env"] = [
        {"name": "MLPATTERNS_HOME", "value": STATE},
        # a server told to stop answers on for a while, each answer closing its
        # connection, while the endpoints drop the pod: a rolling update loses nothing
        {"name": "MLPATTERNS_HTTP_DRAIN_SECONDS", "value": DRAIN_SECONDS},
    ]
    found = env_from(service, options)
    if found:
        spec["envFrom"] = found
    spec["resources"] = resources(version.resources)
    spec["securityContext"] = container_security()
    # a container that fails says why in its status (the operator's Degraded reason)
    spec["terminationMessagePolicy"] = "FallbackToLogsOnError"
    spec["volumeMounts"] = [
        {"name": "state", "mountPath": STATE},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (an emptyDir, the pod's own)
        *(mounts or []),
    ]
    return spec


def pod_volumes(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}, *extra]


def service_object(
    service: ModelService,
    name: str,
    object_labels: dict[str, str],
    pod_selector: dict[str, str],
    options: RenderOptions,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, object_labels, options),
        "spec": {
            "selector": pod_selector,
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
