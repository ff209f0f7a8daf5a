"""Starting a model server: fetch (with a local cache), check, load, then serve.

The model is fetched and loaded before the HTTP server starts, so a failed fetch or
a digest mismatch ends the process with a non-zero exit and a message naming the
model and the reason: a pod that fails this never becomes ready. uvicorn runs the
app (several worker processes with `workers`); SIGTERM stops accepting, finishes
in-flight requests, flushes the prediction log and exits 0.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import redis
from starlette.applications import Starlette

from mlpatterns.logsetup import configure_logging, level_from
from mlpatterns.logstreams import Stream, open_log, place
from mlpatterns.process import usable_cpus
from mlpatterns.registry.references import PathRef, parse_ref
from mlpatterns.registry.store import StoreError
from mlpatterns.server_limits import DrainingServer, uvicorn_config
from mlpatterns.serving.app import ServerConfig, ServerState, create_app
from mlpatterns.serving.features import (
    SOURCE_TIMEOUT,
    DataCache,
    FeatureSource,
    FeatureSourceError,
    ParquetFeatures,
    RedisFeatures,
    SqliteFeatures,
    parse_source,
)
from mlpatterns.serving.metrics import ServerMetrics
from mlpatterns.serving.model import LoadedModel, ModelLoadError
from mlpatterns.serving.remote import RemotePredictor
from mlpatterns.settings import Settings, load_settings, web_limits

__all__ = [
    "CONFIG_ENV",
    "ServeOptions",
    "app_from_environment",
    "build_app",
    "data_cache",
    "fetch_model",
    "serve",
]

CONFIG_ENV = "MLPATTERNS_SERVE_CONFIG"


def fetch_model(reference: str, settings: Settings) -> Path:
    """A local folder holding the model: the folder itself for a path reference (the
    model-in-image case: no registry needed), else a digest-keyed cache under
    MLPATTERNS_HOME, filled from the registry or S3 on first use."""
    from mlpatterns.registry.registry import Registry

    ref = parse_ref(reference)
    if isinstance(ref, PathRef):
        return ref.path.resolve()
    try:
        registry = Registry.from_settings(settings)
        cache = settings.home.resolve() / "cache" / "models"
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".fetch-"))
        try:
            meta = registry.fetch(reference, staging)  # every digest checked against it
            target = cache / meta.sha256
            if not _same_files(staging, target):  # missing, or edited since: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.replace(staging, target)  # atomic: a half-fetched model is never cached
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except (StoreError, ValueError, OSError) as error:
        raise ModelLoadError(f"cannot fetch {reference}: {error}") from None
    return target


def _same_files(fetched: Path, cached: Path) -> bool:
    """Whether the cache holds exactly the registry's bytes: the cached folder's own
    metadata.json could have been edited along with the model it vouches for."""
    for path in fetched.iterdir():
        try:
            if (cached / path.name).read_bytes() != path.read_bytes():
                return False
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class ServeOptions:
    """What each server process needs; passed to uvicorn workers as JSON in the environment."""

    folder: str
    workers: int = 1
    service: str = ""
    version: str = ""  # the ModelService version this server is, if any
    batching: bool = True
    max_batch_rows: int = 256
    max_batch_wait: float = 0.0
    inference_thread: bool = False
    max_body_bytes: int = 4 << 20
    log_predictions: bool = True
    drift: bool = True  # measure the recent rows against the training profile
    file_name: str = "model.onnx"  # predictor.onnx for the prediction half of the split
    predictor_url: str = ""  # set: a preprocess server in front of that prediction server
    predictor_timeout: float = 5.0
    queue_url: str = ""  # the asynchronous pattern's API, submitting to this queue
    queue_namespace: str = ""
    job_ids: str = "random"  # or "request": a job is named by its request's id
    grpc_address: str = ""  # host:port: the Open Inference Protocol over gRPC too
    access_log: bool = False  # one log line per request
    cache_entries: int = 0  # the prediction cache's size; 0: none
    cache_ttl: float = 300.0
    cache_shared: bool = False  # in MLPATTERNS_REDIS_URL's Redis, for every replica
    features: str = ""  # the data cache's source (`features.parse_source`); "": none
    features_cache_entries: int = 100_000
    features_cache_ttl: float = 60.0

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeOptions:
        return cls(**json.loads(os.environ[CONFIG_ENV]))


def _threads(workers: int) -> int:
    return max(1, usable_cpus() // max(1, workers))


def build_app(options: ServeOptions, settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    preprocessing = bool(options.predictor_url)
    file_name = "preprocess.onnx" if preprocessing else options.file_name
    model = LoadedModel(Path(options.folder), file_name, threads=_threads(options.workers))
    config = ServerConfig(
        service=options.service,
        version=options.version,
        max_body_bytes=options.max_body_bytes,
        batching=options.batching,
        max_batch_rows=options.max_batch_rows,
        max_batch_wait=options.max_batch_wait,
        inference_thread=options.inference_thread,
        grpc_address=options.grpc_address,
        access_log=options.access_log,
        cache_entries=options.cache_entries,
        cache_ttl=options.cache_ttl,
        cache_redis_url=(settings.redis_url or "") if options.cache_shared else "",
        cache_redis_password=(
            settings.redis_password.get_secret_value() if settings.redis_password else None
        ),
    )
    service = options.service or model.name
    profile = model.metadata.profile if options.drift else None
    metrics = ServerMetrics(service, model.version, profile)
    log = None
    if options.log_predictions:
        writer = str(os.getpid()) if options.workers > 1 else ""  # a file per process
        log = open_log(
            place(settings),
            Stream.PREDICTIONS,
            service,
            options.version,
            writer=writer,
            on_drop=metrics.dropped.inc,
        )
    remote = None
    if preprocessing:
        remote = RemotePredictor(options.predictor_url, model.name, options.predictor_timeout)
    state = ServerState(
        model=model, config=config, metrics=metrics, prediction_log=log, remote=remote
    )
    if options.features:
        state.data_cache = data_cache(options, settings, model, metrics.count_feature_lookups)
    if options.queue_url:
        from mlpatterns.serving.asynchronous import JobIds, create_async_app
        from mlpatterns.serving.jobs import queue_from_settings

        queue, _ = queue_from_settings(settings, options.queue_url, options.queue_namespace)
        job_ids: JobIds = "request" if options.job_ids == "request" else "random"
        return create_async_app(state, queue, max_depth=settings.async_max_queue, job_ids=job_ids)
    return create_app(state)


def data_cache(
    options: ServeOptions,
    settings: Settings,
    model: LoadedModel,
    count: Callable[[bool, int], None],
) -> DataCache:
    """The data cache of `options.features`' source, reading the model's features;
    FeatureSourceError when the source cannot serve them."""
    names = model.metadata.feature_names
    where = parse_source(options.features)
    source: FeatureSource
    if where.kind == "sqlite":
        source = SqliteFeatures(Path(where.path), where.table, where.id_column, names)
    elif where.kind == "parquet":
        source = ParquetFeatures(Path(where.path), where.id_column, names)
    else:
        if not settings.redis_url:
            raise FeatureSourceError("features from Redis need MLPATTERNS_REDIS_URL")
        password = settings.redis_password.get_secret_value() if settings.redis_password else None
        client = redis.Redis.from_url(
            settings.redis_url, password=password, socket_timeout=SOURCE_TIMEOUT
        )
        source = RedisFeatures(client, where.path, names)
    return DataCache(
        source, names, options.features_cache_entries, options.features_cache_ttl, count
    )


def app_from_environment() -> Starlette:
    """The uvicorn factory: each worker process builds its app from CONFIG_ENV (and,
    started afresh by uvicorn's supervisor, sets up its logging again)."""
    configure_logging(level_from(os.environ))
    return build_app(ServeOptions.from_env())


def serve(options: ServeOptions, host: str, port: int) -> None:
    file_name = "preprocess.onnx" if options.predictor_url else options.file_name
    model = LoadedModel(Path(options.folder), file_name)  # fail here, before listening
    if options.features:  # and here if the feature source cannot serve the model
        data_cache(options, load_settings(), model, lambda hit, n: None).close()
    os.environ[CONFIG_ENV] = options.to_env()
    limits = web_limits(load_settings(), options.max_body_bytes)
    config = uvicorn_config(
        "mlpatterns.serving.server:app_from_environment",
        host,
        port,
        limits,
        factory=True,
        workers=options.workers,
    )
    if options.workers > 1:
        from uvicorn.supervisors import Multiprocess

        # the supervisor restarts crashed workers and stops them all on SIGTERM
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    DrainingServer(config).run()
