"""Which processes a ModelService needs, decided once for both runtimes.

`components(service, version)` is a pure function of the spec: each component's
name, role, `mlpatterns` arguments, port and probes, whether it loads the model or
talks to a queue, and which log streams it writes. What differs between runtimes
is only where things are (a model's path, a listening address, a peer's URL, a
queue), so those places are `Slot`s in the arguments: the embedded planner
(`mlpatterns.local.plan`) and the Kubernetes renderer (`mlpatterns.render`) each
fill them in for their runtime, and add nothing else to a command line.

Per version, by pattern:
- web-single, synchronous: a model server;
- preprocess-prediction: a predictor (predictor.onnx) and a preprocess server in
  front of it, which writes the prediction log;
- asynchronous: an async API and a worker sharing the version's queue;
- a synchronous service's `followUp` version (multiple-stage prediction): the same,
  its jobs named by their requests' ids;
- batch: the batch job, on `spec.batch.schedule`, for the answering version only.
A gateway (`gateway(service)`) executes the route table in front of them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mlpatterns.api.modelservice import ModelService, Version
from mlpatterns.logstreams.streams import Stream

__all__ = [
    "Component",
    "Port",
    "Slot",
    "components",
    "expand",
    "gateway",
    "served_versions",
    "upstream_options",
]


class Slot(enum.Enum):
    """A place in a command line that each runtime fills in."""

    MODEL = "model"  # where the version's model is
    HOST = "host"  # the address to listen on
    PORT = "port"  # the port to listen on
    GRPC_PORT = "grpc-port"  # the port to serve the Open Inference Protocol over gRPC on (0: none)
    PREDICTOR = "predictor"  # the URL of this version's predictor component
    QUEUE = "queue"  # which queue: the option and its value
    ROUTES = "routes"  # the ModelService file the gateway executes
    UPSTREAMS = "upstreams"  # one `--upstream version=URL` per served version


@dataclass(frozen=True)
class Port:
    """The one port a component listens on, and the paths its probes ask."""

    name: str  # "http" serves clients; "health" only answers probes
    ready: str | None  # readiness: polled until 200 (None: ready once started)
    live: str


@dataclass(frozen=True)
class Component:
    name: str  # unique within a version: the process and container name
    role: str  # the `app.kubernetes.io/component` label
    args: tuple[str | Slot, ...]  # after `mlpatterns`
    port: Port | None = None
    routed: bool = False  # answers the version's traffic (the gateway's upstream)
    object_suffix: str = ""  # its workload is `<service>-<version><suffix>`
    queue: bool = False  # needs the queue's address in its environment
    redis: bool = False  # needs Redis' address in its environment (a shared cache)
    logs: tuple[Stream, ...] = ()
    schedule: str | None = None  # a job, run on this cron schedule (UTC)
    grpc: bool = False  # also serves the Open Inference Protocol over gRPC (Slot.GRPC_PORT)


SERVING = Port("http", "/v2/health/ready", "/v2/health/live")
WORKER = Port("health", None, "/health")
GATEWAY = Port("http", "/-/health", "/-/health")
LISTEN = ("--host", Slot.HOST, "--port", Slot.PORT)
GRPC = ("--grpc-port", Slot.GRPC_PORT)


def served_versions(service: ModelService) -> list[Version]:
    """The versions that run: all of them, except that a batch job runs only the
    version that takes the traffic."""
    spec = service.spec
    if spec.pattern != "batch":
        return list(spec.versions)
    answering = spec.default_route()[0].version
    return [v for v in spec.versions if v.name == answering]


def components(service: ModelService, version: Version) -> tuple[Component, ...]:
    """What runs `version` of `service`; exactly one component is routed, unless batch."""
    name, spec = service.metadata.name, service.spec
    logging = spec.logging.predictions
    logs = (Stream.PREDICTIONS,) if logging else ()
    log_flag = () if logging else ("--no-log-predictions",)
    tags = ("--service", name, "--version", version.name)
    cached, shared = _cache_options(version)
    follows_up = spec.follow_up is not None and spec.follow_up.version == version.name
    if spec.pattern in ("web-single", "synchronous") and not follows_up:
        featured, from_redis = _feature_options(version)
        args = ("serve", "model", "--model", Slot.MODEL, *LISTEN, *GRPC, *tags, *log_flag,
                *cached, *featured)  # fmt: skip
        served = Component(
            "model", "model-server", args, SERVING, routed=True, logs=logs, grpc=True,
            redis=shared or from_redis,
        )  # fmt: skip
        return (served,)
    if spec.pattern == "preprocess-prediction":
        # the front writes the prediction log: the predictor's rows are its inputs
        predicts: tuple[str | Slot, ...] = (
            "serve", "model", "--model", Slot.MODEL, "--file", "predictor.onnx", *LISTEN,
            "--service", f"{name}-predictor", "--version", version.name,
            "--no-log-predictions", *cached)  # fmt: skip
        prepares = ("serve", "preprocess", "--preprocessor", Slot.MODEL,
                    "--predictor-url", Slot.PREDICTOR, *LISTEN, *tags, *log_flag)  # fmt: skip
        return (
            Component(
                "predictor",
                "predictor",
                predicts,
                SERVING,
                object_suffix="-predictor",
                redis=shared,
            ),
            Component("preprocess", "preprocess", prepares, SERVING, routed=True, logs=logs),
        )
    if spec.pattern == "asynchronous" or follows_up:
        model = ("--model", Slot.MODEL, Slot.QUEUE)
        job_ids = ("--job-ids", "request") if follows_up else ()
        api = ("serve", "async-api", *model, *LISTEN, *job_ids)
        works = ("serve", "worker", *model, "--health-host", Slot.HOST,
                 "--health-port", Slot.PORT, *tags, *log_flag)  # fmt: skip
        return (
            Component("async-api", "async-api", api, SERVING, routed=True, queue=True),
            Component(
                "worker", "worker", works, WORKER, object_suffix="-worker", queue=True, logs=logs
            ),
        )
    assert spec.batch is not None  # the batch pattern: validated on load
    job = spec.batch
    args = ("batch", "predict", "--model", Slot.MODEL, "--input", job.input,
            "--output", job.output, "--id-column", job.id_column, *tags, *log_flag)  # fmt: skip
    return (Component("batch", "batch", args, logs=logs, schedule=job.schedule),)


def _cache_options(version: Version) -> tuple[tuple[str, ...], bool]:
    """The model server's options for the version's prediction cache, and whether it
    is shared (in Redis)."""
    cache = version.cache
    if cache is None or not cache.enabled:
        return (), False
    options = ("--cache-entries", str(cache.max_entries), "--cache-ttl", f"{cache.ttl_seconds:g}")
    return (*options, "--cache-shared") if cache.shared else options, cache.shared


def _feature_options(version: Version) -> tuple[tuple[str, ...], bool]:
    """The model server's options for the version's data cache, and whether its source
    is Redis (the platform's)."""
    features = version.features
    if features is None:
        return (), False
    if features.sqlite is not None:
        table = features.sqlite
        source = f"sqlite:{table.path}?table={table.table}&id={table.id_column}"
    elif features.parquet is not None:
        source = f"parquet:{features.parquet.path}?id={features.parquet.id_column}"
    else:
        assert features.redis is not None  # exactly one source: validated on load
        source = f"redis:{features.redis.key_prefix}"
    cache = features.cache
    options = ("--features", source, "--features-cache-entries", str(cache.max_entries),
               "--features-cache-ttl", f"{cache.ttl_seconds:g}")  # fmt: skip
    return options, features.redis is not None


def gateway() -> Component:
    """The gateway in front of a served (not batch) ModelService's versions."""
    args = ("serve", "gateway", "-f", Slot.ROUTES, *LISTEN, Slot.UPSTREAMS)
    return Component(
        "gateway",
        "gateway",
        args,
        GATEWAY,
        logs=(Stream.DECISIONS, Stream.FEEDBACK),
    )


def expand(args: Iterable[str | Slot], fill: Callable[[Slot], list[str]]) -> list[str]:
    """The command line with each slot replaced by what `fill` says goes there."""
    found: list[str] = []
    for item in args:
        found.extend(fill(item) if isinstance(item, Slot) else [item])
    return found


def upstream_options(upstreams: dict[str, str]) -> list[str]:
    """The gateway's `--upstream version=URL` options, one per served version."""
    found: list[str] = []
    for version, url in upstreams.items():
        found += ["--upstream", f"{version}={url}"]
    return found
