"""`mlpatterns serve ...`, `mlpatterns fetch-model` and `mlpatterns build-context`."""

from __future__ import annotations

import os
import shutil
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

from mlpatterns import __version__
from mlpatterns.files import read_if_present
from mlpatterns.settings import load_settings

if TYPE_CHECKING:
    from mlpatterns.serving.jobs import JobQueue
    from mlpatterns.serving.server import ServeOptions

__all__ = [
    "DOCKERFILE",
    "QUEUE",
    "QUEUE_NAMESPACE",
    "SERVICE",
    "VERSION",
    "JobIdChoice",
    "build_context",
    "console",
    "fetch_model",
    "serve_app",
    "serve_async_api",
    "serve_gateway",
    "serve_model",
    "serve_preprocess",
    "serve_worker",
]

console = Console(stderr=True)


class JobIdChoice(StrEnum):
    RANDOM = "random"
    REQUEST = "request"


class DataPlaneChoice(StrEnum):
    PYTHON = "python"
    COMPILED = "compiled"


serve_app = typer.Typer(
    help="Run a model, preprocess, async or gateway server.", no_args_is_help=True
)


def _load_failed(error: Exception) -> NoReturn:
    """One line, never wrapped: a pod's termination message is this error's last line."""
    console.print(f"[red]model load failed: {error}[/red]", soft_wrap=True)
    raise typer.Exit(1) from None


def _fetch(reference: str) -> Path:
    from mlpatterns.serving.model import ModelLoadError
    from mlpatterns.serving.server import fetch_model

    try:
        return fetch_model(reference, load_settings())
    except ModelLoadError as error:
        _load_failed(error)


def _serve(options: ServeOptions, host: str, port: int, banner: str) -> None:
    from mlpatterns.serving.features import FeatureSourceError
    from mlpatterns.serving.model import ModelLoadError
    from mlpatterns.serving.server import serve

    console.print(f"{banner} on http://{host}:{port}")
    try:
        serve(options, host, port)
    except ModelLoadError as error:
        _load_failed(error)
    except FeatureSourceError as error:
        console.print(f"[red]feature source: {error}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None


def _serve_fetched(reference: str, host: str, port: int, banner: str, **options: Any) -> None:
    """Fetch the model `reference` names, then serve it with `options` (`ServeOptions`);
    `banner` may name the model's folder as {folder}."""
    from mlpatterns.serving.server import ServeOptions

    folder = _fetch(reference)
    served = ServeOptions(folder=str(folder), **options)
    _serve(served, host, port, banner.replace("{folder}", str(folder)))


SERVICE = typer.Option("", help="Service name in metrics and logs (default: the model's).")
ACCESS_LOG = typer.Option(
    False, help="Log a line per request: method, path, status, duration and request id."
)
VERSION = typer.Option(
    "", "--version", help="The ModelService version this is; its prediction log says so."
)


@serve_app.command("model")
def serve_model(
    model: str = typer.Option(
        ..., help="models:/name/version, models:/name@alias, s3://..., or a folder."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Server processes (each loads the model)."),
    service: str = SERVICE,
    batching: bool = typer.Option(True, help="Merge concurrent requests into one onnxruntime run."),
    max_batch_rows: int = typer.Option(256, min=1, help="Largest merged batch, in rows."),
    max_batch_wait: float = typer.Option(
        0.0, min=0, help="Seconds a lone request waits for company."
    ),
    max_body_bytes: int = typer.Option(4 << 20, min=1, help="Larger request bodies get a 413."),
    log_predictions: bool = typer.Option(True, help="Write the prediction log."),
    drift: bool = typer.Option(
        True, help="Export drift metrics: the recent rows against the training profile."
    ),
    inference_thread: bool = typer.Option(
        False, help="Run inference on its own thread (for slow models with a core to spare)."
    ),
    file: str = typer.Option("model.onnx", help="Graph to serve: predictor.onnx for the split."),
    version: str = VERSION,
    grpc_port: int = typer.Option(
        0, min=0, max=65535, help="Serve the Open Inference Protocol over gRPC on this port too."
    ),
    access_log: bool = ACCESS_LOG,
    cache_entries: int = typer.Option(
        0, min=0, help="Answers the prediction cache keeps (identical inputs); 0: no cache."
    ),
    cache_ttl: float = typer.Option(300.0, min=0.001, help="Seconds a cached answer is kept."),
    cache_shared: bool = typer.Option(
        False, help="Keep the cache in MLPATTERNS_REDIS_URL's Redis, shared by every replica."
    ),
    features: str = typer.Option(
        "",
        help='The data cache\'s feature source, for requests naming entities ({"ids": [...]}): '
        "sqlite:PATH?table=T&id=COLUMN, parquet:PATH?id=COLUMN, or redis:KEY_PREFIX (hashes in "
        "MLPATTERNS_REDIS_URL's Redis).",
    ),
    features_cache_entries: int = typer.Option(
        100_000, min=1, help="Entities' features the data cache keeps."
    ),
    features_cache_ttl: float = typer.Option(
        60.0, min=0.001, help="Seconds an entity's features are kept."
    ),
) -> None:
    """Serve one ONNX model over the Open Inference Protocol v2 (HTTP, and gRPC with
    --grpc-port), KServe's v1 protocol and the simple API."""
    if cache_shared and not load_settings().redis_url:
        console.print("[red]--cache-shared needs MLPATTERNS_REDIS_URL (the Redis to share)[/red]")
        raise typer.Exit(2)
    grpc_address = ""
    if grpc_port:
        grpc_address = f"[{host}]:{grpc_port}" if ":" in host else f"{host}:{grpc_port}"
    _serve_fetched(
        model,
        host,
        port,
        f"serving {model} ({file}) from {{folder}}"
        + (f"; gRPC on {grpc_address}" if grpc_address else ""),
        workers=workers,
        service=service,
        version=version,
        batching=batching,
        max_batch_rows=max_batch_rows,
        max_batch_wait=max_batch_wait,
        max_body_bytes=max_body_bytes,
        log_predictions=log_predictions,
        drift=drift,
        inference_thread=inference_thread,
        file_name=file,
        grpc_address=grpc_address,
        access_log=access_log,
        cache_entries=cache_entries,
        cache_ttl=cache_ttl,
        cache_shared=cache_shared,
        features=features,
        features_cache_entries=features_cache_entries,
        features_cache_ttl=features_cache_ttl,
    )


QUEUE = typer.Option(
    "",
    help="redis://host:port/db or sqlite:///path (default: MLPATTERNS_REDIS_URL, else "
    "SQLite under MLPATTERNS_HOME). Redis' password comes from MLPATTERNS_REDIS_PASSWORD.",
)
QUEUE_NAMESPACE = typer.Option(
    "", help="Keeps this queue apart from others in the same Redis database."
)


def _open_queue(queue: str, namespace: str, **options: Any) -> tuple[JobQueue, str, str]:
    """The queue, its URL, and how to name it in a log (a password in a URL is masked)."""
    from mlpatterns.serving.jobs import queue_from_settings
    from mlpatterns.settings import masked_url

    opened, url = queue_from_settings(load_settings(), queue, namespace, **options)
    return opened, url, masked_url(url)


@serve_app.command("async-api")
def serve_async_api(
    model: str = typer.Option(..., help="The model whose inputs the API accepts (a reference)."),
    queue: str = QUEUE,
    queue_namespace: str = QUEUE_NAMESPACE,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    max_body_bytes: int = typer.Option(4 << 20, min=1, help="Larger request bodies get a 413."),
    access_log: bool = ACCESS_LOG,
    job_ids: JobIdChoice = typer.Option(
        JobIdChoice.RANDOM,
        help="random, or request: a job is named by its request's x-request-id (the "
        "follow-up of multiple-stage prediction).",
    ),
) -> None:
    """The asynchronous API: POST /predict answers a job id at once; GET /jobs/{id} polls."""
    from mlpatterns.serving.server import ServeOptions

    folder = _fetch(model)
    opened, url, shown = _open_queue(queue, queue_namespace)  # a bad URL fails before listening
    opened.close()  # each server process opens its own
    options = ServeOptions(
        folder=str(folder),
        batching=False,
        max_body_bytes=max_body_bytes,
        log_predictions=False,
        queue_url=url,
        queue_namespace=queue_namespace,
        access_log=access_log,
        job_ids=job_ids.value,
    )
    _serve(options, host, port, f"async API for {model}, queue {shown},")


@serve_app.command("worker")
def serve_worker(
    model: str = typer.Option(..., help="models:/name/version, models:/name@alias or a folder."),
    queue: str = QUEUE,
    queue_namespace: str = QUEUE_NAMESPACE,
    threads: int = typer.Option(1, min=1, help="Jobs worked on at once in this process."),
    visibility_timeout: float = typer.Option(
        30.0, min=0.1, help="Seconds before a job whose worker went silent is delivered again."
    ),
    max_attempts: int = typer.Option(3, min=1, help="Tries before a job is dead-lettered."),
    log_predictions: bool = typer.Option(True, help="Write the prediction log."),
    health_host: str = typer.Option("127.0.0.1", help="Address of GET /health."),
    health_port: int = typer.Option(
        0, min=0, help="Port of GET /health, the liveness probe's (0: none)."
    ),
    service: str = SERVICE,
    version: str = VERSION,
) -> None:
    """A worker of the asynchronous pattern: predicts queued jobs until SIGTERM; exits 1
    if every worker thread has died."""
    import signal
    import threading

    from mlpatterns.logstreams import Stream, open_log, place
    from mlpatterns.serving.model import LoadedModel
    from mlpatterns.serving.worker import Worker, serve_health

    loaded = LoadedModel(_fetch(model))
    settings = load_settings()
    jobs, _, shown = _open_queue(
        queue,
        queue_namespace,
        visibility_timeout=visibility_timeout,
        max_attempts=max_attempts,
    )
    service = service or loaded.name
    log = None
    if log_predictions:  # a worker's own file: its version's API may write one too
        where = place(settings)
        log = open_log(where, Stream.PREDICTIONS, service, version, writer=f"worker.{os.getpid()}")
    worker = Worker(loaded, jobs, threads=threads, log=log, service=service, version=version)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    worker.start()
    health = serve_health(worker, health_host, health_port) if health_port else None
    console.print(f"{worker.name} working on {shown} with {loaded.metadata.ref}")
    while not stopping.wait(1.0):
        if worker.health().threads == 0:
            console.print(f"[red]{worker.name}: every worker thread has died[/red]")
            break
    worker.stop()  # the jobs in hand are finished first
    if health is not None:
        health.shutdown()
    if log is not None:
        log.close()
    jobs.close()
    console.print(f"{worker.name} stopped after {worker.completed} jobs")
    if not stopping.is_set():
        raise typer.Exit(1)


@serve_app.command("preprocess")
def serve_preprocess(
    preprocessor: str = typer.Option(
        ..., help="The model whose preprocess.onnx to run (a reference)."
    ),
    predictor_url: str = typer.Option(
        ..., help="The prediction server, e.g. http://127.0.0.1:8081."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    timeout: float = typer.Option(5.0, min=0.01, help="Seconds to wait for the prediction server."),
    max_body_bytes: int = typer.Option(4 << 20, min=1, help="Larger request bodies get a 413."),
    log_predictions: bool = typer.Option(True, help="Write the prediction log."),
    service: str = SERVICE,
    version: str = VERSION,
    access_log: bool = ACCESS_LOG,
) -> None:
    """The preprocess server: runs preprocess.onnx, asks the prediction server over HTTP."""
    _serve_fetched(
        preprocessor,
        host,
        port,
        f"preprocessing for {predictor_url}",
        batching=False,
        max_body_bytes=max_body_bytes,
        log_predictions=log_predictions,
        service=service,
        version=version,
        predictor_url=predictor_url,
        predictor_timeout=timeout,
        access_log=access_log,
    )


@serve_app.command("gateway")
def serve_gateway(
    file: Path = typer.Option(
        ..., "-f", "--file", help="The ModelService (YAML); watched for changes."
    ),
    upstream: list[str] = typer.Option(
        ..., help="version=URL of its model server; repeat per version."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    shadow_limit: int = typer.Option(
        64, min=1, help="Shadow copies in flight at most; more are dropped."
    ),
    log_decisions: bool = typer.Option(
        True, help="Log each routing decision and feedback (the A/B report's input)."
    ),
    max_body_bytes: int = typer.Option(4 << 20, min=1, help="Larger request bodies get a 413."),
    watch_configmap: str = typer.Option(
        "",
        metavar="NAME",
        help="In a pod: also watch this ConfigMap of the pod's namespace through the "
        "Kubernetes API (its key named like --file) and apply changes at once.",
    ),
    rollout_status: Path | None = typer.Option(
        None,
        metavar="FILE",
        help="The embedded mode's rollout status (JSON): route as the rollout says; watched.",
    ),
    access_log: bool = ACCESS_LOG,
    data_plane: DataPlaneChoice = typer.Option(
        DataPlaneChoice.PYTHON,
        envvar="MLPATTERNS_GATEWAY_DATA_PLANE",
        help="python: this process forwards every request; compiled: mlpatterns-dataplane "
        "(Rust; MLPATTERNS_DATAPLANE or PATH) forwards them and this process controls it.",
    ),
) -> None:
    """The traffic gateway: splits, sticky users, conditions, shadow, kill switches."""
    import yaml

    from mlpatterns.api.load import ModelServiceError, load_model_service, parse_model_service
    from mlpatterns.logstreams import Stream, open_log, place
    from mlpatterns.rollout.decide import in_force
    from mlpatterns.rollout.status import parse_status
    from mlpatterns.routing.gateway import Gateway
    from mlpatterns.routing.gateway_app import create_control_app, run_gateway
    from mlpatterns.routing.table import RoutingError, compile_table
    from mlpatterns.settings import web_limits

    upstreams = dict(item.split("=", 1) for item in upstream if "=" in item)
    if len(upstreams) != len(upstream):
        raise typer.BadParameter("write each as version=URL", param_hint="--upstream")
    try:
        status = parse_status(read_if_present(rollout_status))
        table = compile_table(in_force(load_model_service(file), status))
        gateway = Gateway(
            table,
            upstreams,
            shadow_limit=shadow_limit,
            access_log=access_log,
        )
        gateway.replace_table(table)  # checks every version has an upstream
    except (ModelServiceError, RoutingError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    settings = load_settings()
    feedback_log = None
    if log_decisions:
        where, name = place(settings), table.service
        gateway.decision_log = open_log(where, Stream.DECISIONS, name, "gateway")
        feedback_log = open_log(where, Stream.FEEDBACK, name, "gateway")
    seen = {"text": file.read_bytes(), "status": read_if_present(rollout_status)}

    def apply(text: bytes, origin: str, status: bytes = b"") -> bool:
        """Make `text` (a ModelService) the routes in force, as its rollout `status`
        says, unless unchanged or invalid."""
        if text == seen["text"] and status == seen["status"]:
            return False
        try:
            service = parse_model_service(yaml.safe_load(text), origin)
            gateway.replace_table(compile_table(in_force(service, parse_status(status))))
        except (ModelServiceError, RoutingError, ValueError, yaml.YAMLError) as error:
            console.print(f"[red]kept the current routes; {origin} is invalid: {error}[/red]")
            return False
        seen["text"], seen["status"] = text, status
        console.print(f"reloaded routes from {origin}")
        return True

    def reload() -> bool:
        try:
            text = file.read_bytes()
        except OSError as error:
            console.print(f"[red]kept the current routes; cannot read {file}: {error}[/red]")
            return False
        return apply(text, str(file), read_if_present(rollout_status))

    watchers = []
    if watch_configmap:
        from mlpatterns.routing.kube_watch import ClusterAccess, watch_config_map

        access = ClusterAccess.in_cluster()
        origin = f"configmap {access.namespace}/{watch_configmap}"
        watchers.append(
            lambda: watch_config_map(
                access, watch_configmap, file.name, lambda text: apply(text, origin)
            )
        )

    console.print(f"gateway for {table.service} on http://{host}:{port}")
    token = settings.gateway_token.get_secret_value() if settings.gateway_token else ""
    # a watched ConfigMap is the one source: the mounted file lags it by kubelet's sync,
    # and polling both would put older routes back after each switch
    polled = None if watchers else reload
    front = None
    if data_plane == DataPlaneChoice.COMPILED:
        from mlpatterns.routing.compiled import CompiledPlane, CompiledPlaneError, find_dataplane

        try:
            binary = find_dataplane(settings.dataplane)
        except CompiledPlaneError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
        front = CompiledPlane(binary, gateway, shadow_limit=shadow_limit)
    control = create_control_app(
        gateway, polled, feedback_log=feedback_log, reload_token=token, front=front
    )
    limits = web_limits(settings, max_body_bytes)
    run_gateway(
        gateway,
        control,
        host,
        port,
        limits,
        reload=polled,
        feedback_log=feedback_log,
        watchers=watchers,
        front=front,
    )


def fetch_model(
    model: str = typer.Argument(..., help="models:/name/version, models:/name@alias or s3://..."),
    directory: Path = typer.Argument(..., help="Folder to write the model and metadata.json to."),
) -> None:
    """Fetch a model and check its digest (for an init container)."""
    from mlpatterns.serving.model import LoadedModel, ModelLoadError

    source = _fetch(model)
    directory.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        shutil.copy2(path, directory / path.name)
    try:
        loaded = LoadedModel(directory)  # checks what was written, digest included
    except ModelLoadError as error:
        _load_failed(error)
    console.print(f"fetched {loaded.metadata.ref} (sha256 {loaded.sha256}) into {directory}")


DOCKERFILE = """\
# A model-in-image server: {ref}
# Build it with:  docker build -t {tag} .
ARG BASE_IMAGE=mlpatterns-serving:{platform_version}
FROM ${{BASE_IMAGE}}
LABEL org.opencontainers.image.title="{name}" \\
      org.opencontainers.image.version="{version}" \\
      io.mlpatterns.model.name="{name}" \\
      io.mlpatterns.model.version="{version}" \\
      io.mlpatterns.model.sha256="{sha256}"
COPY --chown=10001:10001 model/ /model/
USER 10001
EXPOSE 8080
ENTRYPOINT ["mlpatterns", "serve", "model", "--model", "/model", \
            "--host", "0.0.0.0", "--port", "8080"]
"""


def build_context(
    model: str = typer.Argument(..., help="models:/name/version, models:/name@alias or s3://..."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the Docker build context."),
    image: str = typer.Option(
        "", help="Image name (default: the model's name); the tag is its version."
    ),
) -> None:
    """Write a Docker build context for a server image with the model baked in."""
    from mlpatterns.serving.model import LoadedModel

    source = _fetch(model)
    loaded = LoadedModel(source)
    meta = loaded.metadata
    (output / "model").mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        shutil.copy2(path, output / "model" / path.name)
    tag = f"{image or meta.name}:{meta.version}"
    (output / "Dockerfile").write_text(
        DOCKERFILE.format(
            ref=meta.ref,
            tag=tag,
            name=meta.name,
            version=meta.version,
            sha256=loaded.sha256,
            platform_version=__version__,
        )
    )
    (output / ".dockerignore").write_text("*\n!model/\n")
    console.print(f"wrote {output}: docker build -t {tag} {output}")
