"""The prediction cache in real model servers: a repeated input is answered from
the cache (counted, and the model does not run again) with the same answer, over
the simple API and the Open Inference Protocol alike; a different input is not. The
shared cache, in a real Redis, answers a second replica from the first's work, and
a new model (another digest) never gets the old model's answers."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from mlpatterns.serving.cache import SharedPredictionCache
from mlpatterns.serving.inputs import Rows
from mlpatterns.serving.model import Prediction
from tests.integration.test_model_server import MLPATTERNS, Server, start_server
from tests.support.metrics import sample, scrape
from tests.support.processes import free_port
from tests.support.training import FOREST, train

pytestmark = pytest.mark.integration
ROW = {"data": [[6.3, 2.9, 5.6, 1.8]]}
OTHER = {"data": [[5.0, 3.4, 1.5, 0.2]]}
ANSWER = Prediction(["setosa"], [[0.98, 0.01, 0.01]], finite=True)
INFER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                     "data": [6.3, 2.9, 5.6, 1.8]}]}  # fmt: skip


@pytest.fixture(scope="module")
def cached(trained: tuple[Path, str]) -> Iterator[Server]:
    model = f"models:/iris/{trained[1]}"
    running = start_server(trained[0], model, "--cache-entries", "100", "--no-log-predictions")
    yield running
    running.stop()


def runs(url: str) -> float:
    """How many onnxruntime runs the server made."""
    return sample(scrape(url), "mlpatterns_inference_duration_seconds_count")


def test_a_repeated_input_is_answered_from_the_cache(cached: Server) -> None:
    with httpx.Client(base_url=cached.url) as client:
        first = client.post("/predict", json=ROW).json()
        before = runs(cached.url)
        again = client.post("/predict", json=ROW).json()
        infer = client.post("/v2/models/iris/infer", json=INFER)
        assert runs(cached.url) == before  # neither ran the model
        assert again == first
        assert infer.status_code == 200
        client.post("/predict", json=OTHER)
        assert runs(cached.url) == before + 1
    families = scrape(cached.url)
    lookups = "mlpatterns_prediction_cache_lookups_total"
    assert sample(families, lookups, result="hit") == 2
    assert sample(families, lookups, result="miss") == 2


def lookups(url: str) -> tuple[float, float]:
    families = scrape(url)
    name = "mlpatterns_prediction_cache_lookups_total"
    return sample(families, name, result="hit"), sample(families, name, result="miss")


def test_the_shared_cache_serves_every_replica_and_never_a_new_model(
    trained: tuple[Path, str], redis_url: str, tmp_path: Path
) -> None:
    home, logistic = trained
    [forest] = train(home, FOREST)  # another model, another digest
    shared = redis_url.replace("/0", "/2")
    env = {"MLPATTERNS_REDIS_URL": shared}
    options = ("--cache-entries", "100", "--cache-shared", "--no-log-predictions")
    first = start_server(home, f"models:/iris/{logistic}", *options, env=env)
    second = start_server(home, f"models:/iris/{logistic}", *options, env=env)
    other = start_server(home, f"models:/iris/{forest}", *options, env=env)
    try:
        answer = httpx.post(f"{first.url}/predict", json=ROW).json()
        assert lookups(first.url) == (0, 1)
        assert httpx.post(f"{second.url}/predict", json=ROW).json() == answer
        assert lookups(second.url) == (1, 0)  # the first replica's answer
        assert runs(second.url) == 0
        httpx.post(f"{other.url}/predict", json=ROW)
        assert lookups(other.url) == (0, 1)  # same rows, new digest: the model ran
        assert runs(other.url) == 1
    finally:
        for server in (first, second, other):
            server.stop()


def test_a_shared_cache_needs_its_redis(trained: tuple[Path, str]) -> None:
    done = subprocess.run(
        [MLPATTERNS, "serve", "model", "--model", f"models:/iris/{trained[1]}",
         "--cache-entries", "10", "--cache-shared"],
        env={k: v for k, v in os.environ.items() if k != "MLPATTERNS_REDIS_URL"}
        | {"MLPATTERNS_HOME": str(trained[0])},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--cache-shared needs MLPATTERNS_REDIS_URL" in done.stdout + done.stderr


def test_the_shared_cache_keeps_at_most_its_entries_and_a_dead_redis_is_a_miss(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_url.replace("/0", "/3"))
        cache = SharedPredictionCache(client, "bounded", max_entries=3, ttl=60)
        keys = [cache.key("d1", Rows([float(i)] * 4, 4)) for i in range(5)]
        for key in keys:
            await cache.put(key, ANSWER)
        kept = [await cache.get(key) is not None for key in keys]
        assert kept == [False, False, True, True, True]  # the oldest went first
        assert len(await client.keys("mlpatterns:cache:{bounded:d1}:*")) == 3 + 2  # index, order
        await client.aclose()
        dead = redis.asyncio.Redis.from_url(
            f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5
        )
        unreachable = SharedPredictionCache(dead, "bounded", max_entries=3, ttl=60)
        assert await unreachable.get(keys[4]) is None
        await unreachable.put(keys[4], ANSWER)
        assert unreachable.errors == 2

    asyncio.run(scenario())
