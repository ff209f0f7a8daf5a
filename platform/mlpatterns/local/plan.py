"""What `mlpatterns up` runs for a ModelService: the components of
`mlpatterns.topology` as local processes, decided here without side effects (ports
are handed in), so a test can read the plan. Only places are filled in: a model's
reference, 127.0.0.1 and a free port, a predictor's URL, the version's own SQLite
queue under MLPATTERNS_HOME, and the gateway's upstreams.

A model-in-image version (`image:`) runs from a local build context of that image
(`mlpatterns build-context ... -o DIR`), since there is no container runtime here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlpatterns.api.modelservice import ModelService, Version
from mlpatterns.local.rollout import status_path
from mlpatterns.topology import (
    Port,
    Slot,
    components,
    expand,
    gateway,
    served_versions,
    upstream_options,
)

__all__ = ["Plan", "PlanError", "ProcessSpec", "image_folder", "model_reference", "plan"]


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    ready_url: str | None  # polled until it answers 200; None: ready once started
    schedule: str | None = None  # set: a job run at start and on this cron schedule
    env: Mapping[str, str] = field(default_factory=dict)
    version: str | None = None  # the ModelService version it serves (None: the gateway)


@dataclass(frozen=True)
class Plan:
    service: str
    processes: tuple[ProcessSpec, ...]
    upstreams: Mapping[str, str]  # version -> URL the gateway forwards to
    gateway_url: str | None


def image_folder(home: Path, image: str) -> Path:
    """Where the embedded mode looks for an image's build context by default."""
    return home / "images" / re.sub(r"[^A-Za-z0-9_.-]", "_", image)


def model_reference(version: Version, home: Path, images: Mapping[str, Path]) -> str:
    if version.model is not None:
        return version.model.uri
    assert version.image is not None
    folder = images.get(version.image) or image_folder(home, version.image)
    if not (folder / "model").is_dir():
        raise PlanError(
            f"version {version.name} runs image {version.image}, and there is no build context "
            f"for it at {folder}; write one with `mlpatterns build-context <model ref> -o "
            f"{folder}` or pass --image {version.image}=<folder>"
        )
    return str(folder / "model")


def _ready_url(url: str, port: Port | None) -> str | None:
    """What to poll until the process is ready: its readiness path, else its liveness
    path (alive is ready); None for a job, ready once started."""
    return None if port is None else f"{url}{port.ready or port.live}"


def _version_processes(
    service: ModelService,
    version: Version,
    reference: str,
    home: Path,
    next_port: Callable[[], int],
    cli: tuple[str, ...],
) -> tuple[list[ProcessSpec], str | None]:
    processes: list[ProcessSpec] = []
    urls: dict[str, str] = {}
    upstream = None
    queue = home / "queue" / f"{service.metadata.name}-{version.name}.db"
    for part in components(service, version):
        port = next_port() if part.port is not None else 0
        url = f"http://127.0.0.1:{port}"
        places = {
            Slot.MODEL: [reference],
            Slot.HOST: ["127.0.0.1"],
            Slot.PORT: [str(port)],
            Slot.GRPC_PORT: ["0"],  # on a laptop, HTTP only
            Slot.PREDICTOR: [urls.get("predictor", "")],
            Slot.QUEUE: ["--queue", f"sqlite:///{queue}"],
        }
        argv = (*cli, *expand(part.args, places.__getitem__))
        ready = _ready_url(url, part.port)
        name = f"{part.name}-{version.name}"
        processes.append(ProcessSpec(name, argv, ready, part.schedule, version=version.name))
        urls[part.name] = url
        if part.routed:
            upstream = url
    return processes, upstream


def plan(
    service: ModelService,
    *,
    file: Path,
    home: Path,
    gateway_port: int,
    next_port: Callable[[], int],
    cli: tuple[str, ...] = ("mlpatterns",),
    images: Mapping[str, Path] | None = None,
) -> Plan:
    """The processes that run `service` (loaded from `file`) on this machine."""
    processes: list[ProcessSpec] = []
    upstreams: dict[str, str] = {}
    for version in served_versions(service):
        reference = model_reference(version, home, images or {})
        started, upstream = _version_processes(service, version, reference, home, next_port, cli)
        processes.extend(started)
        if upstream is not None:
            upstreams[version.name] = upstream
    gateway_url = None
    if upstreams:
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        front = gateway()
        places = {
            Slot.ROUTES: [str(file)],
            Slot.HOST: ["127.0.0.1"],
            Slot.PORT: [str(gateway_port)],
            Slot.UPSTREAMS: upstream_options(upstreams),
        }
        argv = (*cli, *expand(front.args, places.__getitem__))
        if service.spec.rollout is not None:
            argv += ("--rollout-status", str(status_path(home, service.metadata.name)))
        processes.append(ProcessSpec(front.name, argv, _ready_url(gateway_url, front.port)))
    return Plan(service.metadata.name, tuple(processes), upstreams, gateway_url)
