"""KFP's Kubernetes-native objects against KFP's own CRDs (read from
`../shared/third_party/kubeflow-pipelines/`) on the test control plane: the Pipeline
and PipelineVersion objects `mlpatterns pipeline manifests` writes are accepted as
`kubectl apply -k` sends them and carry the compiled pipeline and platform specs; the
committed base is that output; objects that break KFP's schema are refused with its
reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import repo_path
from tests.support.controlplane import ControlPlane, ControlPlaneError

pytestmark = pytest.mark.cluster
PIPELINES = {"batch-training", "parameter-search", "training-to-serving"}


def listed(control_plane: ControlPlane, kind: str, namespace: str) -> list[dict[str, Any]]:
    out = control_plane.kubectl("get", kind, "-n", namespace, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_the_pipeline_manifests_apply_against_kfps_crds(
    control_plane: ControlPlane,
    kfp_crds: list[str],
    namespace: str,
    tool_env: dict[str, str],
    tmp_path: Path,
) -> None:
    assert (
        "customresourcedefinition.apiextensions.k8s.io/pipelineversions.pipelines.kubeflow.org"
        in (kfp_crds)
    )
    subprocess.run(
        ["mlpatterns", "pipeline", "manifests", "--out", str(tmp_path), "--namespace", namespace],
        env=tool_env, cwd=repo_path(), check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    applied = control_plane.kubectl("apply", "--server-side", "-k", str(tmp_path), "-o", "name")
    assert len(applied.split()) == 2 * len(PIPELINES)

    pipelines = listed(control_plane, "pipelines.pipelines.kubeflow.org", namespace)
    assert {p["metadata"]["name"] for p in pipelines} == PIPELINES
    versions = listed(control_plane, "pipelineversions.pipelines.kubeflow.org", namespace)
    assert {v["spec"]["pipelineName"] for v in versions} == PIPELINES
    for version in versions:
        spec = version["spec"]
        assert spec["pipelineSpec"]["pipelineInfo"]["name"] == spec["pipelineName"]
        assert spec["versionName"] == version["metadata"]["name"]
    [handing] = [v for v in versions if v["spec"]["pipelineName"] == "training-to-serving"]
    executors = handing["spec"]["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]
    secret = executors["executors"]["exec-hand-over"]["secretAsEnv"][0]
    assert {"envVar": "MLPATTERNS_S3_ENDPOINT", "secretKey": "MLPATTERNS_S3_ENDPOINT"} in (
        secret["keyToEnv"]
    )

    # the committed base is the same objects: applying it changes nothing
    again = control_plane.kubectl(
        "apply", "--server-side", "-n", namespace, "-k", str(repo_path("manifests/pipelines")),
        "--dry-run=server", "-o", "json",
    )  # fmt: skip
    committed = {i["metadata"]["name"]: i["spec"] for i in json.loads(again)["items"]}
    stored = {o["metadata"]["name"]: o["spec"] for o in [*pipelines, *versions]}
    assert committed == stored


def version(**spec: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "pipelines.kubeflow.org/v2beta1",
            "kind": "PipelineVersion",
            "metadata": {"name": "iris-v1"},
            "spec": {"pipelineName": "iris", **spec},
        }
    )


def test_kfp_refuses_a_version_that_breaks_its_schema(
    control_plane: ControlPlane, kfp_crds: list[str], namespace: str
) -> None:
    with pytest.raises(ControlPlaneError, match="pipelineSpec: Required value"):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=version())
    bad_name = version(pipelineSpec={"pipelineInfo": {"name": "iris"}}, versionName="Iris_V1")
    with pytest.raises(ControlPlaneError, match="versionName"):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=bad_name)
