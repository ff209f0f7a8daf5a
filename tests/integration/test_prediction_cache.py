"""The prediction cache in a real model server: a repeated input is answered from
the cache (counted, and the model does not run again) with the same answer, over
the simple API and the Open Inference Protocol alike; a different input is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_model_server import Server, start_server
from tests.support.metrics import sample, scrape

pytestmark = pytest.mark.integration
ROW = {"data": [[6.3, 2.9, 5.6, 1.8]]}
OTHER = {"data": [[5.0, 3.4, 1.5, 0.2]]}
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
