"""The Istio renderer's output is accepted by the real API server with Istio's CRDs."""

from __future__ import annotations

import json

import pytest

from tests.support.controlplane import ControlPlane
from tests.unit.test_routing import (
    compile_table,
    istio_native,
    render,
    service,
    with_circuit_breakers,
)

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("sticky", [True, False])
def test_rendered_objects_are_accepted(
    control_plane: ControlPlane, istio_crds: list[str], namespace: str, sticky: bool
) -> None:
    objects = render(compile_table(service(None if sticky else istio_native)), namespace=namespace)
    for rendered in objects:
        control_plane.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(rendered))
    subsets = control_plane.kubectl(
        "get",
        "destinationrule.networking.istio.io",
        "iris",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.subsets[*].name}",
    )
    assert subsets.split() == ["svc", "rf"]
    mirror = control_plane.kubectl(
        "get",
        "virtualservice.networking.istio.io",
        "iris",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.http[0].mirrorPercentage.value}",
    )
    assert float(mirror) == 100


def test_circuit_breakers_are_fields_istio_knows(
    control_plane: ControlPlane, istio_crds: list[str], namespace: str
) -> None:
    rule, _ = render(compile_table(service(with_circuit_breakers)), namespace=namespace)
    control_plane.kubectl(
        "apply", "--server-side", "--validate=strict", "-f", "-", input=json.dumps(rule)
    )
    stored = json.loads(
        control_plane.kubectl(
            "get", "destinationrule.networking.istio.io", "iris", "-n", namespace, "-o", "json"
        )
    )
    assert stored["spec"]["subsets"] == rule["spec"]["subsets"]  # nothing pruned
