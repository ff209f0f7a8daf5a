"""One topology, two runtimes: every catalog pattern's components get the same
command and arguments from the embedded planner and the Kubernetes renderer,
addresses aside (a model's path, a listening address, a peer's URL, a queue)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from mlpatterns.api.load import load_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.local.plan import image_folder, plan
from mlpatterns.render import RenderOptions, render
from mlpatterns.topology import Slot, components, served_versions

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
PATTERNS = sorted(p.name for p in (ROOT / "manifests" / "patterns").iterdir())

# options whose value is where something is, which each runtime decides for itself
ADDRESSES = {
    "--model": "<model>",
    "--preprocessor": "<model>",
    "--host": "<host>",
    "--port": "<port>",
    "--health-host": "<host>",
    "--health-port": "<port>",
    "--grpc-port": "<port>",  # a cluster's model servers serve gRPC too; a laptop's do not
    "--predictor-url": "<peer>",
    "--queue": "<queue>",
    "--queue-namespace": "<queue>",
    "-f": "<routes>",
    "--watch-configmap": None,  # a cluster's second source of the same routes
}


def addresses_aside(argv: list[str]) -> list[str]:
    found: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token in ADDRESSES:
            value = next(tokens)
            if ADDRESSES[token] is not None:
                found.append(ADDRESSES[token] if token.startswith("--queue") else token)
                found.append(ADDRESSES[token] or value)
        elif token == "--upstream":
            version, _, _url = next(tokens).partition("=")
            found += [token, f"{version}=<peer>"]
        else:
            found.append(token)
    return found


def local_commands(service: ModelService, tmp_path: Path) -> dict[str, list[str]]:
    ports = itertools.count(9001)
    for version in service.spec.versions:  # a model-in-image version's build context
        if version.image is not None:
            (image_folder(tmp_path, version.image) / "model").mkdir(parents=True, exist_ok=True)
    planned = plan(
        service,
        file=tmp_path / "ms.yaml",
        home=tmp_path,
        gateway_port=9000,
        next_port=lambda: next(ports),
        cli=("mlpatterns",),
    )
    return {
        p.name: addresses_aside(embedded_only_aside(list(p.argv[1:]))) for p in planned.processes
    }


def embedded_only_aside(argv: list[str]) -> list[str]:
    """Without `--rollout-status FILE`: on one machine the gateway reads the rollout's
    status from that file; in a cluster its routes ConfigMap already holds the traffic
    the rollout put in force."""
    if "--rollout-status" not in argv:
        return argv
    at = argv.index("--rollout-status")
    return argv[:at] + argv[at + 2 :]


def cluster_commands(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    found = {}
    for item in objects:
        if item["kind"] == "Deployment":
            pod = item["spec"]["template"]
        elif item["kind"] == "CronJob":
            pod = item["spec"]["jobTemplate"]["spec"]["template"]
        else:
            continue
        [main] = pod["spec"]["containers"]
        assert main["command"] == ["mlpatterns"]
        version = pod["metadata"]["labels"].get("version")
        name = f"{main['name']}-{version}" if version else main["name"]
        found[name] = addresses_aside(main["args"])
    return found


@pytest.mark.parametrize("name", PATTERNS)
@pytest.mark.parametrize("router", ["gateway", "istio"])
def test_both_runtimes_run_the_same_commands(name: str, router: str, tmp_path: Path) -> None:
    service = load_model_service(ROOT / "manifests" / "patterns" / name / "modelservice.yaml")
    service = service.model_copy(update={"spec": service.spec.model_copy(update={"router": None})})
    local = local_commands(service, tmp_path)
    cluster = cluster_commands(render(service, RenderOptions(router=router)))  # type: ignore[arg-type]
    expected = {
        f"{part.name}-{version.name}"
        for version in served_versions(service)
        for part in components(service, version)
    }
    assert expected <= set(local)
    assert expected <= set(cluster)
    if "gateway" in cluster:  # with Istio, only a table Istio cannot express needs one
        expected.add("gateway")
    assert set(cluster) == expected
    for process in expected:
        assert local[process] == cluster[process], process


def test_every_place_in_a_command_is_filled_by_both_runtimes(tmp_path: Path) -> None:
    for name in PATTERNS:
        service = load_model_service(ROOT / "manifests/patterns" / name / "modelservice.yaml")
        commands = [*local_commands(service, tmp_path).values()]
        commands += cluster_commands(render(service)).values()
        for argv in commands:
            assert not any(isinstance(token, Slot) for token in argv)
            assert all(isinstance(token, str) and token for token in argv), argv
