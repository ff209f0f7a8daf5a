"""Istio's, the Prometheus Operator's and Seldon Core's CRDs on the test control plane:
the objects the platform will render are accepted, bad ones are not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import repo_path
from tests.support.controlplane import ControlPlane, ControlPlaneError

pytestmark = pytest.mark.cluster


def apply(control_plane: ControlPlane, namespace: str, *objects: dict[str, object]) -> str:
    body = "\n---\n".join(yaml.safe_dump(o) for o in objects)
    return control_plane.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=body)


def virtual_service(weight: object) -> dict[str, object]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "iris"},
        "spec": {
            "hosts": ["iris"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "iris", "subset": "svc"}, "weight": weight},
                        {"destination": {"host": "iris", "subset": "rf"}, "weight": 10},
                    ],
                    "mirror": {"host": "iris", "subset": "rf"},
                    "mirrorPercentage": {"value": 100.0},
                }
            ],
        },
    }


DESTINATION_RULE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "iris"},
    "spec": {
        "host": "iris",
        "subsets": [
            {"name": "svc", "labels": {"version": "svc"}},
            {"name": "rf", "labels": {"version": "rf"}},
        ],
    },
}


def test_istio_networking_crds(
    control_plane: ControlPlane, istio_crds: list[str], namespace: str
) -> None:
    for kind in ("virtualservices", "destinationrules", "gateways"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{kind}.networking.istio.io" in (
            istio_crds
        )
    apply(control_plane, namespace, virtual_service(90), DESTINATION_RULE)
    weights = control_plane.kubectl(
        "get",
        "virtualservice.networking.istio.io",
        "iris",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.http[0].route[*].weight}",
    )
    assert weights.split() == ["90", "10"]
    with pytest.raises(ControlPlaneError, match="weight"):
        apply(control_plane, namespace, virtual_service("ninety"))


def test_prometheus_operator_crds(
    control_plane: ControlPlane, prometheus_operator_crds: list[str], namespace: str
) -> None:
    assert len(prometheus_operator_crds) == 3
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "iris"},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "iris"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "iris"},
        "spec": {
            "groups": [
                {
                    "name": "mlpatterns",
                    "rules": [
                        {
                            "alert": "ModelServerDown",
                            "expr": "up{job='iris'} == 0",
                            "for": "5m",
                            "labels": {"severity": "page"},
                        }
                    ],
                }
            ]
        },
    }
    apply(control_plane, namespace, monitor, rule)
    names = control_plane.kubectl(
        "get", "servicemonitors,prometheusrules", "-n", namespace, "-o", "name"
    )
    assert sorted(names.split()) == [
        "prometheusrule.monitoring.coreos.com/iris",
        "servicemonitor.monitoring.coreos.com/iris",
    ]
    bad = {**monitor, "metadata": {"name": "bad"}, "spec": {"endpoints": [{"interval": "often"}]}}
    with pytest.raises(ControlPlaneError, match="interval"):
        apply(control_plane, namespace, bad)


def test_a_router_seldon_model_service_renders_what_seldon_s_crd_accepts_whole(
    control_plane: ControlPlane, seldon_crds: list[str], namespace: str
) -> None:
    """`mlpatterns render` of spec.router seldon, applied with strict field validation:
    every field is one Seldon's schema knows (nothing pruned), and a wrong type is refused."""
    assert seldon_crds == [
        "customresourcedefinition.apiextensions.k8s.io/seldondeployments.machinelearning.seldon.io"
    ]
    mlpatterns = str(Path(sys.executable).with_name("mlpatterns"))
    example = repo_path("manifests", "seldon", "modelservice.yaml")
    rendered = subprocess.run(
        [mlpatterns, "render", "-f", str(example), "-n", namespace],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    [deployment] = list(yaml.safe_load_all(rendered))
    control_plane.kubectl(
        "apply", "--server-side", "--validate=strict", "-n", namespace, "-f", "-", input=rendered
    )
    stored = json.loads(
        control_plane.kubectl(
            "get", "seldondeployment", "iris-seldon", "-n", namespace, "-o", "json"
        )
    )
    assert stored["spec"] == deployment["spec"]
    traffic = [p.get("traffic") for p in stored["spec"]["predictors"]]
    assert traffic == [90, 10, None]
    wrong = json.loads(json.dumps(deployment))
    wrong["metadata"]["name"] = "wrong"
    wrong["spec"]["predictors"][0]["traffic"] = "ninety"
    with pytest.raises(ControlPlaneError, match="traffic"):
        apply(control_plane, namespace, wrong)
    unknown = json.loads(json.dumps(deployment))
    unknown["metadata"]["name"] = "unknown"
    unknown["spec"]["predictors"][0]["weight"] = 90
    with pytest.raises(ControlPlaneError, match="weight"):
        control_plane.kubectl(
            "apply", "--server-side", "--validate=strict", "-n", namespace, "-f", "-",
            input=yaml.safe_dump(unknown),
        )  # fmt: skip
