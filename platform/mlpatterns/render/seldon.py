"""`spec.router: seldon`: a ModelService as one Seldon Core `SeldonDeployment`
(`machinelearning.seldon.io/v1`), for clusters where Seldon Core 1.x serves and routes.

Each version is a predictor named after it: its pod runs the `seldon` image
(`seldon-core-microservice mlpatterns.seldon.Model`) on the model that the
`fetch-model` init container fetched and checked, as model load does everywhere;
the split's weights are the predictors' `traffic`, and the shadow version is the
predictor with `shadow: true`. Replicas, resources, autoscaling (an `hpaSpec`) and a
disruption floor (a `pdbSpec`) are the version's. What Seldon cannot express (rules,
sticky splits, a partial shadow, rollouts, model-in-image, patterns beyond one model
server) the ModelService refuses when it names this router.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.api.modelservice import ModelService, Version
from mlpatterns.render.common import (
    MODELS,
    SERVICE_LABEL,
    RenderOptions,
    container,
    labels,
    metadata,
)
from mlpatterns.render.workloads import cpu_metrics, pod_template

__all__ = ["API_VERSION", "KIND", "NODE", "seldon_objects"]

API_VERSION = "machinelearning.seldon.io/v1"
KIND = "SeldonDeployment"
NODE = "model"  # the graph's one node, and the container that serves it


def _component(service: ModelService, version: Version, options: RenderOptions) -> dict[str, Any]:
    main = container(NODE, options.seldon_image, [], service, version, options)
    template = pod_template(service, version, options, main, {})
    component: dict[str, Any] = {"spec": template["spec"]}
    annotations = template["metadata"].get("annotations")
    if annotations:  # a new model rolls the pods
        component["metadata"] = {"annotations": annotations}
    scaling = version.autoscaling
    if scaling is not None:
        component["hpaSpec"] = {
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metricsv2": cpu_metrics(scaling),
        }
    if version.min_available is not None:
        component["pdbSpec"] = {"minAvailable": version.min_available}
    return component


def _predictor(
    service: ModelService, version: Version, options: RenderOptions, weights: dict[str, int]
) -> dict[str, Any]:
    shadow = service.spec.traffic.shadow
    predictor: dict[str, Any] = {
        "name": version.name,
        "labels": {SERVICE_LABEL: service.metadata.name, "version": version.name},
        "componentSpecs": [_component(service, version, options)],
        "graph": {
            "name": NODE,
            "type": "MODEL",
            "endpoint": {"type": "REST"},
            "parameters": [
                {"name": "model_folder", "type": "STRING", "value": f"{MODELS}/{version.name}"}
            ],
            "children": [],
        },
    }
    if version.autoscaling is None:
        predictor["replicas"] = version.replicas
    if shadow is not None and shadow.version == version.name:
        predictor["shadow"] = True
    else:
        predictor["traffic"] = weights.get(version.name, 0)
    return predictor


def seldon_objects(service: ModelService, options: RenderOptions) -> list[dict[str, Any]]:
    """The SeldonDeployment `<name>`: one predictor per version."""
    name = service.metadata.name
    weights = {d.version: d.weight for d in service.spec.default_route()}
    return [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": metadata(name, labels(service, "router", name), options),
            "spec": {
                "name": name,
                "protocol": "seldon",
                "predictors": [
                    _predictor(service, version, options, weights)
                    for version in service.spec.versions
                ],
            },
        }
    ]
