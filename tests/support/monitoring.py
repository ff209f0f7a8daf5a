"""Prediction monitoring against a real Prometheus: the chart's alert rules with
minutes read as seconds, iris traffic, and what Prometheus says of the alerts. For
the monitoring test and the lifecycle benchmark."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_iris

RULES = Path(__file__).resolve().parents[2] / "charts" / "mlpatterns" / "files" / "alert-rules.yaml"


class HasUrl(Protocol):
    url: str


def rules_in_seconds(folder: Path) -> Path:
    """The chart's rules with every minute read as a second: `for: 10m`, `[10m]` and
    `offset 10m` as ten seconds, `[1h]` as sixty."""
    fast = folder / "alert-rules.yaml"
    text = re.sub(r"for: (\d+)m", r"for: \1s", RULES.read_text())
    text = re.sub(r"\[(\d+)m\]", r"[\1s]", text).replace("[1h]", "[60s]")
    fast.write_text(re.sub(r"offset (\d+)m", r"offset \1s", text))
    return fast


def iris_rows(count: int, seed: int, only: int | None = None) -> npt.NDArray[np.float64]:
    data = load_iris()
    pool = data.data if only is None else data.data[data.target == only]
    rng = np.random.default_rng(seed)
    rows = pool[rng.integers(0, len(pool), count)]
    return rows + rng.uniform(-0.005, 0.005, size=rows.shape)


def send(server: HasUrl, rows: npt.NDArray[np.float64], per_request: int = 100) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for start in range(0, len(rows), per_request):
            chunk = rows[start : start + per_request].tolist()
            assert client.post("/predict", json={"data": chunk}).status_code == 200


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (loopback)
        result: list[dict[str, Any]] = json.loads(answer.read())["data"]["result"]
        return result


def firing(prometheus: str) -> dict[str, dict[str, str]]:
    return {
        alert["metric"]["alertname"]: alert["metric"]
        for alert in query(prometheus, 'ALERTS{alertstate="firing"}')
    }


def seconds_until_firing(prometheus: str, alert: str, limit: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if alert in firing(prometheus):
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{alert} did not fire within {limit:.0f}s: {firing(prometheus)}")
