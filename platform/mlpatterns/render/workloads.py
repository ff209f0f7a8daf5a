"""The serving patterns' workloads, one function per pattern: Deployments and
Services per version (with an HPA and a PDB when asked), the async API and its
workers, the preprocess server in front of its predictor, and the batch CronJob.

Model load is an init container running `mlpatterns fetch-model` into an emptyDir
(digest checked there, so a pod whose model fails never starts its server);
model-in-image runs the version's image, whose entrypoint serves the baked model.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.api.modelservice import ModelService, Version
from mlpatterns.render.common import (
    METRICS_LABEL,
    MODELS,
    ROUTED_LABEL,
    RenderOptions,
    container,
    labels,
    metadata,
    pod_security,
    pod_volumes,
    probes,
    selector,
    service_object,
)

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
    assert version.model is not None
    return container(
        "fetch-model",
        options.image,
        ["fetch-model", version.model.uri, _model_path(version)],
        service,
        version,
        options,
        command=["mlpatterns"],
        mounts=[{"name": "models", "mountPath": MODELS}],
        serves=False,
    )


def _pod(
    service: ModelService,
    version: Version,
    options: RenderOptions,
    main: dict[str, Any],
    pod_labels: dict[str, str],
    extra_volumes: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "containers": [main],
        "volumes": pod_volumes(*extra_volumes),
    }
    if version.model is not None:  # model load
        spec["initContainers"] = [_fetch(service, version, options)]
        main["volumeMounts"].append({"name": "models", "mountPath": MODELS, "readOnly": True})
        spec["volumes"].append({"name": "models", "emptyDir": {}})
    return {"metadata": {"labels": pod_labels}, "spec": spec}


def _server(
    name: str, service: ModelService, version: Version, options: RenderOptions, verb: list[str]
) -> dict[str, Any]:
    """A server container of this version, probed on the Open Inference Protocol's health."""
    tags = ["--service", service.metadata.name, "--variant", version.name]
    logs = [] if service.spec.logging.predictions else ["--no-log-predictions"]
    where = ["--host", "0.0.0.0", "--port", "8080"]  # noqa: S104 (a pod's own address)
    main = container(
        name,
        _image(version, options),
        [*verb, *where, *tags, *logs],
        service,
        version,
        options,
        command=["mlpatterns"],
    )
    main.update(probes("/v2/health/ready", "/v2/health/live"))
    return main


def deployment(
    service: ModelService,
    version: Version,
    options: RenderOptions,
    name: str,
    component: str,
    main: dict[str, Any],
    *,
    routed: bool,
    replicas: int | None = None,
) -> Objects:
    """A Deployment and its Service, plus an HPA and a PDB when the version asks."""
    pod_labels = {**labels(service, component, name), "version": version.name}
    if routed:
        pod_labels[ROUTED_LABEL] = "true"
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(service, name)},
        "template": _pod(service, version, options, main, pod_labels),
    }
    if version.autoscaling is None:  # the HPA owns the replica count when there is one
        spec["replicas"] = version.replicas if replicas is None else replicas
    objects: Objects = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(name, labels(service, component, name), options),
            "spec": spec,
        }
    ]
    if "ports" in main:
        service_labels = {**labels(service, component, name), METRICS_LABEL: "model"}
        objects.append(
            service_object(service, name, service_labels, selector(service, name), options)
        )
    objects.extend(_scaling(service, version, options, name, component))
    return objects


def _scaling(
    service: ModelService, version: Version, options: RenderOptions, name: str, component: str
) -> Objects:
    found: Objects = []
    if version.autoscaling is not None:
        scaling = version.autoscaling
        found.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": metadata(name, labels(service, component, name), options),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": scaling.min_replicas,
                    "maxReplicas": scaling.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": scaling.cpu_utilization,
                                },
                            },
                        }
                    ],
                },
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


def synchronous(service: ModelService, version: Version, options: RenderOptions) -> Objects:
    """Web single and synchronous: one model server per version."""
    main = _server(
        "server", service, version, options, ["serve", "model", "--model", _model_path(version)]
    )
    return deployment(
        service, version, options, _name(service, version), "model-server", main, routed=True
    )


def preprocess_prediction(
    service: ModelService, version: Version, options: RenderOptions
) -> Objects:
    predictor_name = _name(service, version, "-predictor")
    path = _model_path(version)
    predictor = _server(
        "predictor",
        service,
        version,
        options,
        ["serve", "model", "--model", path, "--file", "predictor.onnx"],
    )
    url = f"http://{predictor_name}:8080"
    front = _server(
        "preprocess",
        service,
        version,
        options,
        ["serve", "preprocess", "--preprocessor", path, "--predictor-url", url],
    )
    return [
        *deployment(
            service, version, options, predictor_name, "predictor", predictor, routed=False
        ),
        *deployment(
            service, version, options, _name(service, version), "preprocess", front, routed=True
        ),
    ]


def queue_settings(
    service: ModelService, version: Version, options: RenderOptions
) -> tuple[list[str], list[dict[str, Any]]]:
    """The version's queue: its own namespace in the Redis (an argument), and the
    environment that carries the Redis' address and password (never an argument)."""
    arguments = ["--queue-namespace", f"{service.metadata.name}-{version.name}"]
    queue = service.spec.queue

    def from_secret(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": secret, "key": key}
        if optional:
            ref["optional"] = True
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}

    if queue is not None and queue.secret_name:
        return arguments, [
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
    return arguments, env


WORKER_HEALTH_PORT = 8081


def asynchronous(service: ModelService, version: Version, options: RenderOptions) -> Objects:
    queue, env = queue_settings(service, version, options)
    model = ["--model", _model_path(version), *queue]
    api = container(
        "api",
        _image(version, options),
        ["serve", "async-api", *model, "--host", "0.0.0.0", "--port", "8080"],  # noqa: S104
        service,
        version,
        options,
        command=["mlpatterns"],
    )
    api.update(probes("/v2/health/ready", "/v2/health/live"))
    worker = container(
        "worker",
        _image(version, options),
        [
            "serve",
            "worker",
            *model,
            *("--health-host", "0.0.0.0", "--health-port", str(WORKER_HEALTH_PORT)),  # noqa: S104
        ],
        service,
        version,
        options,
        command=["mlpatterns"],
        serves=False,
    )
    worker["ports"] = [{"name": "health", "containerPort": WORKER_HEALTH_PORT, "protocol": "TCP"}]
    # its threads beat a heartbeat; a worker stuck or without threads is restarted
    worker["livenessProbe"] = {
        "httpGet": {"path": "/health", "port": "health"},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    for part in (api, worker):
        part["env"].extend(env)
    return [
        *deployment(
            service, version, options, _name(service, version), "async-api", api, routed=True
        ),
        *deployment(
            service,
            version,
            options,
            _name(service, version, "-worker"),
            "worker",
            worker,
            routed=False,
        ),
    ]


def batch(service: ModelService, version: Version, options: RenderOptions) -> Objects:
    """The batch pattern: a CronJob, never two runs at once, a failed run retried."""
    assert service.spec.batch is not None
    job = service.spec.batch
    name = service.metadata.name
    logs = [] if service.spec.logging.predictions else ["--no-log-predictions"]
    main = container(
        "batch",
        _image(version, options),
        [
            "batch",
            "predict",
            "--model",
            _model_path(version),
            "--input",
            job.input,
            "--output",
            job.output,
            "--id-column",
            job.id_column,
            *logs,
        ],
        service,
        version,
        options,
        command=["mlpatterns"],
        mounts=[{"name": "data", "mountPath": "/data"}],
        serves=False,
    )
    main["workingDir"] = "/data"
    data = (
        {"name": "data", "persistentVolumeClaim": {"claimName": job.volume_claim}}
        if job.volume_claim
        else {"name": "data", "emptyDir": {}}
    )
    pod_labels = {**labels(service, "batch", name), "version": version.name}
    template = _pod(service, version, options, main, pod_labels, (data,))
    template["spec"]["restartPolicy"] = "Never"
    return [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata(name, labels(service, "batch", name), options),
            "spec": {
                "schedule": job.schedule,
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
    ]
