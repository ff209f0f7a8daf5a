"""Reading a running server's `/metrics` with prometheus-client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> dict[str, Metric]:
    """The metric families a server at `url` exposes, by name."""
    return {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}


def sample(families: dict[str, Metric], name: str, **labels: str) -> float:
    """The value of one sample, 0 when the server has not written it yet."""
    for family in families.values():
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                return float(s.value)
    return 0.0
