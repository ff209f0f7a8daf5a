"""Circuit breaking on the primary path, through the gateway process: a version that
fails in a row is ejected (503 with Retry-After, nothing reaches it) until a probe
succeeds, its fallback answers meanwhile when it has one, and requests beyond its
`maxConcurrent` are refused at once. The failing and slow versions are
tests/support/faulty.py (a model server cannot be made to answer 500s on demand)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_gateway import start_gateway
from tests.integration.test_gateway_parameters import modelservice
from tests.support.faulty import Behaviour, faulty_upstream
from tests.support.metrics import sample, scrape

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]
ROW = {"data": [[5.9, 3.0, 4.2, 1.5]]}


def guarded(name: str, **breaker: Any) -> dict[str, Any]:
    return {"name": name, "model": {"uri": "models:/x@y"}, "circuitBreaker": breaker}


@contextmanager
def gateway(
    tmp_path: Path, versions: list[dict[str, Any]], upstreams: dict[str, str]
) -> Iterator[str]:
    spec = modelservice(
        tmp_path / "ms.yaml", versions, {"split": [{"version": versions[0]["name"], "weight": 100}]}
    )
    url, process = start_gateway(spec, upstreams, tmp_path)
    try:
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def test_failures_in_a_row_eject_the_version_until_a_probe_succeeds(tmp_path: Path) -> None:
    failing = Behaviour(status=500)
    with (
        faulty_upstream(failing) as upstream,
        gateway(
            tmp_path, [guarded("a", consecutiveErrors=3, ejectionSeconds=2)], {"a": upstream}
        ) as url,
        httpx.Client(base_url=url) as client,
    ):
        assert [client.post("/predict", json=ROW).status_code for _ in range(3)] == [500] * 3
        ejected = client.post("/predict", json=ROW)
        assert ejected.status_code == 503
        assert ejected.headers["retry-after"] in ("1", "2")
        assert ejected.json()["error"].startswith("version a is ejected after failing")
        assert sum(failing.tries.values()) == 3  # the ejected version was not called
        families = scrape(url)
        assert sample(families, "mlpatterns_gateway_breaker_refusals_total", reason="ejected") == 1
        failing.status = 200
        time.sleep(2.1)
        assert client.post("/predict", json=ROW).status_code == 200  # the probe
        assert [client.post("/predict", json=ROW).status_code for _ in range(5)] == [200] * 5


def test_an_ejected_version_s_requests_go_to_its_fallback(tmp_path: Path) -> None:
    versions = [
        guarded("a", consecutiveErrors=2, ejectionSeconds=30, fallback="b"),
        {"name": "b", "model": {"uri": "models:/x@y"}},
    ]
    with (
        faulty_upstream(Behaviour(status=500)) as broken,
        faulty_upstream(Behaviour()) as healthy,
        gateway(tmp_path, versions, {"a": broken, "b": healthy}) as url,
        httpx.Client(base_url=url) as client,
    ):
        answers = [client.post("/predict", json=ROW) for _ in range(6)]
    assert [a.status_code for a in answers] == [500, 500, 200, 200, 200, 200]
    assert [a.headers["x-mlpatterns-version"] for a in answers] == ["a"] * 2 + ["b"] * 4


def test_requests_beyond_max_concurrent_are_refused_at_once(tmp_path: Path) -> None:
    with (
        faulty_upstream(Behaviour(delay=1.5)) as slow,
        gateway(tmp_path, [guarded("a", maxConcurrent=1)], {"a": slow}) as url,
        ThreadPoolExecutor(2) as pool,
    ):
        first = pool.submit(httpx.post, f"{url}/predict", json=ROW, timeout=10)
        time.sleep(0.5)  # the first is in flight
        started = time.monotonic()
        refused = httpx.post(f"{url}/predict", json=ROW, timeout=10)
        waited = time.monotonic() - started
        assert first.result().status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "version a is full" in refused.json()["error"]
    assert waited < 0.5  # refused, not queued behind the slow one
