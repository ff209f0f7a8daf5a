"""The prediction cache: answers by model digest and identical rows, bounded in
entries and time, and a version's `cache` turned into the model server's flags."""

from __future__ import annotations

import copy

import pytest

from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.render import RenderOptions, render
from mlpatterns.serving.cache import PredictionCache
from mlpatterns.serving.inputs import Rows
from mlpatterns.serving.model import Prediction
from mlpatterns.topology import components
from tests.unit.test_modelservice import EXAMPLE

pytestmark = pytest.mark.unit

ROWS = Rows([5.1, 3.5, 1.4, 0.2], 4)
ANSWER = Prediction(["setosa"], [[0.98, 0.01, 0.01]], finite=True)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_identical_rows_of_the_same_model_are_answered_from_the_cache() -> None:
    cache = PredictionCache(10, 60)
    key = cache.key("digest-1", ROWS)
    assert cache.get(key) is None
    cache.put(key, ANSWER)
    assert cache.get(cache.key("digest-1", Rows([5.1, 3.5, 1.4, 0.2], 4))) is ANSWER
    assert cache.get(cache.key("digest-1", Rows([5.1, 3.5, 1.4, 0.3], 4))) is None
    assert cache.get(cache.key("digest-1", Rows([5.1, 3.5, 1.4, 0.2], 2))) is None  # 2 rows


def test_a_new_model_never_gets_an_old_answer() -> None:
    cache = PredictionCache(10, 60)
    cache.put(cache.key("digest-1", ROWS), ANSWER)
    assert cache.get(cache.key("digest-2", ROWS)) is None


def test_answers_expire_and_the_least_recently_used_go_first() -> None:
    clock = Clock()
    cache = PredictionCache(2, 10, timer=clock)
    first, second, third = (cache.key("d", Rows([float(i)] * 4, 4)) for i in range(3))
    cache.put(first, ANSWER)
    cache.put(second, ANSWER)
    assert cache.get(first) is ANSWER  # first is now the most recently used
    cache.put(third, ANSWER)
    assert (cache.get(first), cache.get(second), len(cache)) == (ANSWER, None, 2)
    clock.now = 10.5
    assert cache.get(first) is None


def test_a_non_finite_answer_is_not_kept() -> None:
    cache = PredictionCache(10, 60)
    key = cache.key("d", ROWS)
    cache.put(key, Prediction(["a"], [[float("nan")]], finite=False))
    assert cache.get(key) is None


def service(pattern: str = "synchronous", **cache: object) -> ModelService:
    data = copy.deepcopy(EXAMPLE)
    data["spec"]["pattern"] = pattern
    data["spec"]["versions"][0]["cache"] = cache
    data["spec"]["traffic"] = {}
    return parse_model_service(data, "iris.yaml")


def test_a_version_s_cache_becomes_its_model_server_s_flags() -> None:
    parsed = service(maxEntries=500, ttlSeconds=60)
    [model] = components(parsed, parsed.spec.versions[0])
    assert model.args[-4:] == ("--cache-entries", "500", "--cache-ttl", "60")
    off = service(enabled=False)
    [model] = components(off, off.spec.versions[0])
    assert "--cache-entries" not in model.args


def test_patterns_without_a_synchronous_answer_refuse_a_cache() -> None:
    with pytest.raises(ModelServiceError, match="which pattern asynchronous does not use"):
        service("asynchronous")


def test_a_shared_cache_gives_the_model_server_redis_address_from_the_environment() -> None:
    parsed = service(shared=True)
    [model] = components(parsed, parsed.spec.versions[0])
    assert model.redis
    assert model.args[-1] == "--cache-shared"
    rendered = render(parsed, RenderOptions(redis_secret="mlpatterns-redis"))
    deployments = [o for o in rendered if o["kind"] == "Deployment"]
    [container] = deployments[0]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLPATTERNS_REDIS_URL"]["value"].startswith("redis://")
    assert "secretKeyRef" in env["MLPATTERNS_REDIS_PASSWORD"]["valueFrom"]
    assert all("redis://" not in arg for arg in container["args"])  # never an argument
