"""What `mlpatterns up` runs for a ModelService: one list of local processes, decided
here without side effects (ports are handed in), so a test can read the plan.

Per version, by pattern:
- web-single, synchronous: a model server;
- preprocess-prediction: a prediction server (predictor.onnx) and a preprocess
  server in front of it;
- asynchronous: an async API and a worker sharing the version's own SQLite queue;
- batch: no server: the batch job, run at start and then on `spec.batch.schedule`.
A gateway in front of every served version executes the route table.

A model-in-image version (`image:`) runs from a local build context of that image
(`mlpatterns build-context ... -o DIR`), since there is no container runtime here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlpatterns.api.modelservice import ModelService, Version


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    ready_url: str | None  # polled until it answers 200; None: ready once started
    schedule: str | None = None  # set: a job run at start and on this cron schedule
    env: Mapping[str, str] = field(default_factory=dict)


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


def _server(name: str, command: tuple[str, ...], port: int, *options: str) -> ProcessSpec:
    url = f"http://127.0.0.1:{port}"
    argv = (*command, "--host", "127.0.0.1", "--port", str(port), *options)
    return ProcessSpec(name, argv, f"{url}/v2/health/ready")


def _version_processes(
    service: ModelService,
    version: Version,
    reference: str,
    home: Path,
    next_port: Callable[[], int],
    cli: tuple[str, ...],
) -> tuple[list[ProcessSpec], str | None]:
    name = service.metadata.name
    spec = service.spec
    logs = () if spec.logging.predictions else ("--no-log-predictions",)
    tag = ("--service", name, "--variant", version.name)
    if spec.pattern in ("web-single", "synchronous"):
        port = next_port()
        server = _server(
            f"model-{version.name}",
            (*cli, "serve", "model"),
            port,
            "--model",
            reference,
            *tag,
            *logs,
        )
        return [server], f"http://127.0.0.1:{port}"
    if spec.pattern == "preprocess-prediction":
        predictor_port, preprocess_port = next_port(), next_port()
        predictor = _server(
            f"predictor-{version.name}",
            (*cli, "serve", "model"),
            predictor_port,
            "--model",
            reference,
            "--file",
            "predictor.onnx",
            "--service",
            f"{name}-predictor",
            "--variant",
            version.name,
            "--no-log-predictions",
        )
        preprocess = _server(
            f"preprocess-{version.name}",
            (*cli, "serve", "preprocess"),
            preprocess_port,
            "--preprocessor",
            reference,
            "--predictor-url",
            f"http://127.0.0.1:{predictor_port}",
            *tag,
            *logs,
        )
        return [predictor, preprocess], f"http://127.0.0.1:{preprocess_port}"
    if spec.pattern == "asynchronous":
        queue = f"sqlite:///{home / 'queue' / f'{name}-{version.name}.db'}"
        port = next_port()
        api = _server(
            f"async-api-{version.name}",
            (*cli, "serve", "async-api"),
            port,
            "--model",
            reference,
            "--queue",
            queue,
        )
        worker = ProcessSpec(
            f"worker-{version.name}",
            (*cli, "serve", "worker", "--model", reference, "--queue", queue, *logs),
            None,
        )
        return [api, worker], f"http://127.0.0.1:{port}"
    assert spec.batch is not None  # the batch pattern: validated on load
    batch = spec.batch
    job = ProcessSpec(
        f"batch-{version.name}",
        (
            *cli,
            "batch",
            "predict",
            "--model",
            reference,
            "--input",
            batch.input,
            "--output",
            batch.output,
            "--id-column",
            batch.id_column,
            *logs,
        ),
        None,
        schedule=batch.schedule,
    )
    return [job], None


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
    versions = service.spec.versions
    if service.spec.pattern == "batch":  # one job, by the version that takes the traffic
        answering = service.spec.default_route()[0].version
        versions = [v for v in versions if v.name == answering]
    for version in versions:
        reference = model_reference(version, home, images or {})
        started, upstream = _version_processes(service, version, reference, home, next_port, cli)
        processes.extend(started)
        if upstream is not None:
            upstreams[version.name] = upstream
    gateway_url = None
    if upstreams:
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        argv = [*cli, "serve", "gateway", "-f", str(file), "--port", str(gateway_port)]
        for name, url in upstreams.items():
            argv += ["--upstream", f"{name}={url}"]
        processes.append(ProcessSpec("gateway", tuple(argv), f"{gateway_url}/-/health"))
    return Plan(service.metadata.name, tuple(processes), upstreams, gateway_url)
