"""The workloads of a ModelService's versions: each component of
`mlpatterns.topology` as a Deployment and its Service (with an HPA and a PDB when
the version asks), or as a CronJob for the batch job. Only places are filled in:
the model's path in the pod, the pod's address and port, the predictor's Service,
and the queue's namespace (its address and password come as environment).

Model load is an init container running `mlpatterns fetch-model` into an emptyDir
(digest checked there, so a pod whose model fails never starts its server);
model-in-image runs the version's image, whose entrypoint serves the baked model.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.api.modelservice import Autoscaling, ModelService, Version
from mlpatterns.render.common import (
    METRICS_LABEL,
    MODEL_ANNOTATION,
    MODELS,
    PORT,
    ROUTED_LABEL,
    RenderOptions,
    container,
    labels,
    listening,
    metadata,
    pod_security,
    pod_volumes,
    pull_secrets,
    selector,
    service_object,
)
from mlpatterns.topology import Component, Slot, components, expand

__all__ = [
    "BAKED",
    "PORTS",
    "Objects",
    "cpu_metrics",
    "cron_job",
    "deployment",
    "pod_template",
    "queue_settings",
    "version_objects",
]

Objects = list[dict[str, Any]]
BAKED = "/model"  # where `mlpatterns build-context` puts the model in an image


def _name(service: ModelService, version: Version, suffix: str = "") -> str:
    return f"{service.metadata.name}-{version.name}{suffix}"


def _model_path(version: Version) -> str:
    """Where the model is: fetched into an emptyDir, or baked into the image at /model."""
    return BAKED if version.image is not None else f"{MODELS}/{version.name}"


def _image(version: Version, options: RenderOptions) -> str:
    return version.image or options.image


def _fetch(service: ModelService, version: Version, options: RenderOptions) -> dict[str, Any]:
    """The init container that fetches the version's model and checks its digest."""
    assert version.model is not None
    resolved = options.models.get(version.name)
    return container(
        "fetch-model",
        options.image,
        ["fetch-model", resolved.uri if resolved else version.model.uri, _model_path(version)],
        service,
        version,
        options,
        command=["mlpatterns"],
        mounts=[{"name": "models", "mountPath": MODELS}],
    )


def cpu_metrics(scaling: Autoscaling) -> list[dict[str, Any]]:
    """An autoscaler's metrics (autoscaling/v2): the pods' CPU against their requests."""
    target = {"type": "Utilization", "averageUtilization": scaling.cpu_utilization}
    return [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]


def pod_template(
    service: ModelService,
    version: Version,
    options: RenderOptions,
    main: dict[str, Any],
    pod_labels: dict[str, str],
    extra_volumes: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A version's pod: `main`, least privilege, and model load's init container."""
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        **pull_secrets(options),
        "containers": [main],
        "volumes": pod_volumes(*extra_volumes),
    }
    meta: dict[str, Any] = {"labels": pod_labels}
    if version.model is not None:  # model load
        spec["initContainers"] = [_fetch(service, version, options)]
        main["volumeMounts"].append({"name": "models", "mountPath": MODELS, "readOnly": True})
        spec["volumes"].append({"name": "models", "emptyDir": {}})
        resolved = options.models.get(version.name)
        if resolved is not None:
            meta["annotations"] = {MODEL_ANNOTATION: resolved.sha256}
    return {"metadata": meta, "spec": spec}


def deployment(
    service: ModelService,
    version: Version,
    options: RenderOptions,
    name: str,
    component: str,
    main: dict[str, Any],
    *,
    routed: bool,
) -> Objects:
    """A Deployment and its Service, plus an HPA and a PDB when the version asks."""
    pod_labels = {**labels(service, component, name), "version": version.name}
    if routed:
        pod_labels[ROUTED_LABEL] = "true"
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(service, name)},
        "template": pod_template(service, version, options, main, pod_labels),
    }
    if version.autoscaling is None:  # the HPA owns the replica count when there is one
        spec["replicas"] = version.replicas
    objects: Objects = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(name, labels(service, component, name), options),
            "spec": spec,
        }
    ]
    if any(port["name"] == "http" for port in main.get("ports", ())):
        service_labels = {**labels(service, component, name), METRICS_LABEL: "model"}
        served = service_object(service, name, service_labels, selector(service, name), options)
        if any(port["name"] == "grpc" for port in main["ports"]):
            served["spec"]["ports"].append(
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP",
                 "appProtocol": "grpc"}
            )  # fmt: skip
        objects.append(served)
    objects.extend(_scaling(service, version, options, name, component))
    return objects


def _scaling(
    service: ModelService, version: Version, options: RenderOptions, name: str, component: str
) -> Objects:
    found: Objects = []
    if version.autoscaling is not None:
        scaling = version.autoscaling
        hpa: dict[str, Any] = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": cpu_metrics(scaling),
        }
        if scaling.scale_down_seconds is not None:
            window = scaling.scale_down_seconds
            hpa["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": window}}
        found.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": metadata(name, labels(service, component, name), options),
                "spec": hpa,
            }
        )
    if version.min_available is not None:
        found.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": metadata(name, labels(service, component, name), options),
                "spec": {
                    "minAvailable": version.min_available,
                    "selector": {"matchLabels": selector(service, name)},
                },
            }
        )
    return found


def queue_settings(service: ModelService, options: RenderOptions) -> list[dict[str, Any]]:
    """The environment that carries the Redis' address and password (never an
    argument; the version's namespace in it is)."""
    queue = service.spec.queue

    def from_secret(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": secret, "key": key}
        if optional:
            ref["optional"] = True
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}

    if queue is not None and queue.secret_name:
        return [
            from_secret("MLPATTERNS_REDIS_URL", queue.secret_name, "MLPATTERNS_REDIS_URL"),
            from_secret(
                "MLPATTERNS_REDIS_PASSWORD",
                queue.secret_name,
                "MLPATTERNS_REDIS_PASSWORD",
                optional=True,
            ),
        ]
    own = queue.redis_url if queue is not None else None
    env: list[dict[str, Any]] = [
        {"name": "MLPATTERNS_REDIS_URL", "value": own or options.redis_url}
    ]
    if not own and options.redis_secret:  # the platform chart's Redis and its password
        env.append(from_secret("MLPATTERNS_REDIS_PASSWORD", options.redis_secret, "redis-password"))
    return env


PORTS = {"http": PORT, "health": 8081}
GRPC_PORT = 8081  # the Open Inference Protocol over gRPC (KServe's and MLServer's number)


def _places(service: ModelService, version: Version, part: Component) -> dict[Slot, list[str]]:
    return {
        Slot.MODEL: [_model_path(version)],
        Slot.HOST: ["0.0.0.0"],  # noqa: S104 (the pod's own address)
        Slot.PORT: [str(PORTS[part.port.name] if part.port else PORT)],
        Slot.GRPC_PORT: [str(GRPC_PORT)],
        Slot.PREDICTOR: [f"http://{_name(service, version, '-predictor')}:{PORT}"],
        Slot.QUEUE: ["--queue-namespace", f"{service.metadata.name}-{version.name}"],
    }


def _container(
    service: ModelService, version: Version, part: Component, options: RenderOptions
) -> dict[str, Any]:
    main = container(
        part.name,
        _image(version, options),
        expand(part.args, _places(service, version, part).__getitem__),
        service,
        version,
        options,
        command=["mlpatterns"],
        mounts=[{"name": "data", "mountPath": "/data"}] if part.schedule else None,
    )
    if part.port is not None:
        listening(main, part.port, PORTS[part.port.name])
    if part.grpc:
        main["ports"].append({"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"})
    if part.queue or part.redis:
        main["env"].extend(queue_settings(service, options))
    return main


def version_objects(service: ModelService, version: Version, options: RenderOptions) -> Objects:
    """Every workload of `version`, in the order of its components."""
    objects: Objects = []
    for part in components(service, version):
        main = _container(service, version, part, options)
        if part.schedule is not None:
            objects.append(cron_job(service, version, options, main, part.schedule))
            continue
        name = _name(service, version, part.object_suffix)
        objects.extend(
            deployment(service, version, options, name, part.role, main, routed=part.routed)
        )
    return objects


def cron_job(
    service: ModelService, version: Version, options: RenderOptions, main: dict[str, Any],
    schedule: str,
) -> dict[str, Any]:  # fmt: skip
    """A job on `schedule`: never two runs at once, a failed run retried."""
    assert service.spec.batch is not None
    claim = service.spec.batch.volume_claim
    name = service.metadata.name
    main["workingDir"] = "/data"
    data = (
        {"name": "data", "persistentVolumeClaim": {"claimName": claim}}
        if claim
        else {"name": "data", "emptyDir": {}}
    )
    pod_labels = {**labels(service, "batch", name), "version": version.name}
    template = pod_template(service, version, options, main, pod_labels, (data,))
    template["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(name, labels(service, "batch", name), options),
        "spec": {
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": pod_labels},
                "spec": {"backoffLimit": 3, "template": template},
            },
        },
    }
