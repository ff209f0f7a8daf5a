"""Third-party CRDs installed into the test control plane, read at test time from the
published Go modules that `hack/tools crds` locates, or, for projects the module proxy
does not serve (KFP, Seldon Core), from `../shared/third_party/` beside the repository; never
committed to this repo."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support.controlplane import REPO, ControlPlane, ControlPlaneError

PROMETHEUS_OPERATOR_KINDS = ("servicemonitors", "podmonitors", "prometheusrules")
THIRD_PARTY = REPO.parent / "shared" / "third_party"


def crd_folder(name: str) -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "hack/tools"), "crds", name],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return Path(out.stdout.strip())


def _apply_and_wait(control_plane: ControlPlane, files: list[Path]) -> list[str]:
    # Server-side: these CRDs are too large for client-side apply's annotation.
    args = [arg for path in files for arg in ("-f", str(path))]
    out = control_plane.kubectl("apply", "--server-side", "--force-conflicts", *args, "-o", "name")
    names = out.split()
    # `kubectl wait` fails at once on a CRD the API server has not yet given conditions
    deadline = time.monotonic() + 60
    while True:
        try:
            control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
            return names
        except ControlPlaneError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def install_istio_crds(control_plane: ControlPlane) -> list[str]:
    """All of Istio's CRDs (networking.istio.io v1 among them), from istio.io/api."""
    return _apply_and_wait(
        control_plane, [crd_folder("istio") / "customresourcedefinitions.gen.yaml"]
    )


def install_prometheus_operator_crds(control_plane: ControlPlane) -> list[str]:
    """ServiceMonitor, PodMonitor and PrometheusRule, from the prometheus-operator module."""
    folder = crd_folder("prometheus-operator")
    files = [folder / f"monitoring.coreos.com_{kind}.yaml" for kind in PROMETHEUS_OPERATOR_KINDS]
    return _apply_and_wait(control_plane, files)


def install_kfp_crds(control_plane: ControlPlane) -> list[str]:
    """KFP's Pipeline and PipelineVersion (pipelines.kubeflow.org/v2beta1, its
    Kubernetes-native API) and ScheduledWorkflow (kubeflow.org/v1beta1)."""
    folder = THIRD_PARTY / "kubeflow-pipelines" / "crds"
    files = sorted(folder.glob("*.yaml"))
    assert len(files) == 3, f"KFP's CRDs are missing from {folder}"
    return _apply_and_wait(control_plane, files)


def install_seldon_crds(control_plane: ControlPlane) -> list[str]:
    """Seldon Core 1.17.1's SeldonDeployment (machinelearning.seldon.io/v1)."""
    folder = THIRD_PARTY / "seldon-core" / "crds"
    files = sorted(folder.glob("*.yaml"))
    assert files, f"Seldon Core's CRD is missing from {folder}"
    return _apply_and_wait(control_plane, files)
