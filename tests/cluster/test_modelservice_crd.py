"""The ModelService CRD generated from the pydantic models, on the real API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlpatterns.api.schema import crd
from tests.support.controlplane import ControlPlane, ControlPlaneError
from tests.unit.test_modelservice import EXAMPLE

pytestmark = pytest.mark.cluster


def test_the_api_server_accepts_the_crd_and_enforces_its_schema(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(crd()))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/modelservices.mlpatterns.io", "--timeout=60s"
    )
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(EXAMPLE))
    weights = control_plane.kubectl(
        "get", "ms", "iris", "-n", namespace, "-o", "jsonpath={.spec.traffic.split[*].weight}"
    )
    assert weights.split() == ["90", "10"]

    bad = json.loads(json.dumps(EXAMPLE))
    bad["metadata"]["name"] = "bad"
    bad["spec"]["versions"][0]["replicas"] = -1
    with pytest.raises(ControlPlaneError, match=r"spec.versions\[0\].replicas: Invalid value: -1"):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad))
    unknown = json.loads(json.dumps(EXAMPLE))
    unknown["metadata"]["name"] = "unknown"
    unknown["spec"]["replicas"] = 3  # belongs on a version, not the spec
    with pytest.raises(ControlPlaneError, match=r'unknown field "spec.replicas"'):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(unknown))


def test_a_pattern_applies_with_kustomize(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(crd()))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/modelservices.mlpatterns.io", "--timeout=60s"
    )
    folder = Path(__file__).resolve().parents[2] / "manifests" / "patterns" / "online-ab"
    control_plane.kubectl("apply", "-k", str(folder), "-n", namespace)
    assert control_plane.kubectl("get", "ms", "-n", namespace, "-o", "name").split() == [
        "modelservice.mlpatterns.io/iris-ab"
    ]
