"""spec.router seldon: a ModelService as one SeldonDeployment, and what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlpatterns.api.load import ModelServiceError, load_model_service, parse_model_service
from mlpatterns.api.resolved import ResolvedModel
from mlpatterns.render import RenderOptions, render

pytestmark = pytest.mark.unit
EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "seldon" / "modelservice.yaml"


def example_data() -> dict[str, Any]:
    service = load_model_service(EXAMPLE)
    data: dict[str, Any] = service.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def test_every_version_is_a_predictor_with_its_weight_or_the_shadow() -> None:
    objects = render(load_model_service(EXAMPLE), RenderOptions(namespace="ml"))
    [deployment] = objects
    assert deployment["apiVersion"] == "machinelearning.seldon.io/v1"
    assert deployment["kind"] == "SeldonDeployment"
    assert deployment["metadata"]["namespace"] == "ml"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlpatterns"
    predictors = {p["name"]: p for p in deployment["spec"]["predictors"]}
    assert predictors["current"]["traffic"] == 90
    assert predictors["candidate"]["traffic"] == 10
    assert predictors["challenger"]["shadow"] is True
    assert "traffic" not in predictors["challenger"]
    assert predictors["current"]["replicas"] == 2
    assert predictors["current"]["labels"]["version"] == "current"


def test_a_predictor_runs_the_wrapper_on_the_model_its_init_container_checked() -> None:
    options = RenderOptions(image="serving:1", seldon_image="seldon:1")
    [deployment] = render(load_model_service(EXAMPLE), options)
    current = deployment["spec"]["predictors"][0]
    graph = current["graph"]
    assert graph["name"] == "model"
    assert graph["type"] == "MODEL"
    assert graph["parameters"] == [
        {"name": "model_folder", "type": "STRING", "value": "/models/current"}
    ]
    [component] = current["componentSpecs"]
    pod = component["spec"]
    [fetch] = pod["initContainers"]
    assert fetch["image"] == "serving:1"
    assert fetch["args"] == ["fetch-model", "models:/iris@production", "/models/current"]
    [model] = pod["containers"]
    assert model["name"] == "model"
    assert model["image"] == "seldon:1"
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in model["volumeMounts"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    for part in (fetch, model):
        assert part["securityContext"]["readOnlyRootFilesystem"] is True
        assert part["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert component["pdbSpec"] == {"minAvailable": 1}


def test_autoscaling_is_an_hpa_spec_and_a_resolved_model_rolls_the_pods() -> None:
    resolved = ResolvedModel(uri="models:/iris/1.0.0", sha256="ab" * 32)
    options = RenderOptions(models={"challenger": resolved})
    [deployment] = render(load_model_service(EXAMPLE), options)
    challenger = deployment["spec"]["predictors"][2]
    assert "replicas" not in challenger  # the hpaSpec owns the count
    [component] = challenger["componentSpecs"]
    assert component["hpaSpec"]["minReplicas"] == 1
    assert component["hpaSpec"]["maxReplicas"] == 3
    assert component["hpaSpec"]["metricsv2"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 70,
    }
    assert component["metadata"]["annotations"]["mlpatterns.io/model-sha256"] == "ab" * 32
    assert component["spec"]["initContainers"][0]["args"][1] == "models:/iris/1.0.0"


def test_a_single_version_takes_all_traffic() -> None:
    data = example_data()
    data["spec"]["versions"] = data["spec"]["versions"][:1]
    data["spec"]["traffic"] = {}
    [deployment] = render(parse_model_service(data))
    [predictor] = deployment["spec"]["predictors"]
    assert predictor["traffic"] == 100


REFUSED = [
    ({"pattern": "asynchronous"}, "pattern asynchronous"),
    (
        {
            "traffic": {
                "rules": [
                    {
                        "match": {"headers": {"x-user": {"exact": "a"}}},
                        "route": [{"version": "candidate", "weight": 100}],
                    }
                ]
            }
        },
        "traffic.rules",
    ),
    (
        {
            "traffic": {
                "split": [
                    {"version": "current", "weight": 50},
                    {"version": "candidate", "weight": 50},
                ],
                "sticky": {"header": "x-user"},
            }
        },
        "traffic.sticky",
    ),
    ({"traffic": {"shadow": {"version": "candidate", "percent": 10}}}, "less than 100%"),
    ({"versions": [{"name": "current", "image": "iris:1"}]}, "model-in-image"),
    (
        {
            "versions": [
                {
                    "name": "current",
                    "model": {"uri": "models:/iris@production"},
                    "parameters": {"threshold": 0.7},
                }
            ]
        },
        "parameters",
    ),
    (
        {
            "versions": [
                {
                    "name": "current",
                    "model": {"uri": "models:/iris@production"},
                    "autoscaling": {"maxReplicas": 3, "scaleDownSeconds": 60},
                }
            ]
        },
        "scaleDownSeconds",
    ),
    (
        {
            "versions": [
                {
                    "name": "current",
                    "model": {"uri": "models:/iris@production"},
                    "circuitBreaker": {"maxConcurrent": 8},
                }
            ]
        },
        "circuitBreaker",
    ),
]


@pytest.mark.parametrize(("change", "message"), REFUSED)
def test_what_seldon_cannot_express_is_refused_with_the_alternative(
    change: dict[str, Any], message: str
) -> None:
    data = example_data()
    data["spec"]["traffic"] = {}
    data["spec"]["versions"] = data["spec"]["versions"][:2]
    data["spec"].update(change)
    with pytest.raises(ModelServiceError) as refused:
        parse_model_service(data, "iris.yaml")
    assert message in str(refused.value)
    assert "choose router gateway or istio" in str(refused.value)
