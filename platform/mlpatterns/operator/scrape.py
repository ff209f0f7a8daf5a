"""A rollout's figures read straight from the pods, for an operator told no
Prometheus: the router's counters (each mlpatterns gateway pod's `/-/metrics`, or,
under Istio, each of the candidate's pods' sidecar on Envoy's stats port) and the
candidate's drift gauges (its servers' `/metrics`).

Counters are cumulative per pod, so an interval's figures are each pod's
difference from its previous reading, summed over the pods: a pod first seen after
the baseline started within the interval and counts from zero, a pod whose counters
went down restarted (`VersionCounts.minus`). The first look at a service only takes
the baseline. Only Ready pods with an address are read.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlpatterns.render.common import PORT
from mlpatterns.rollout.observe import (
    GatewayReading,
    VersionCounts,
    drifting,
    envoy_reading,
    gateway_reading,
)

__all__ = ["ENVOY_STATS_PORT", "PodMetrics", "Target", "drift_targets", "router_targets"]

ENVOY_STATS_PORT = 15090  # an Istio sidecar's Prometheus endpoint (/stats/prometheus)
METRICS_LIMIT = 8 << 20  # bytes read of one metrics page
DRIFT_TIMEOUT = 1.0  # a candidate that hangs is what a rollout is for: it must not stall one
log = logging.getLogger("mlpatterns.operator.scrape")

Target = tuple[str, str]  # (pod name, URL of its metrics)
ListPods = Callable[[str, str], list[dict[str, Any]]]  # (namespace, service) -> pods
Fetch = Callable[[str, float], str | None]  # (url, timeout) -> text, None when unread


def _ready_address(pod: Mapping[str, Any]) -> str | None:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    address = status.get("podIP") or status.get("pod_ip")
    return str(address) if address and conditions.get("Ready") == "True" else None


def _labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = (pod.get("metadata") or {}).get("labels") or {}
    return labels


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def router_targets(pods: Iterable[Mapping[str, Any]], router: str, version: str) -> list[Target]:
    """Where a service's router counts `version`'s requests: its gateway pods, or under
    Istio the version's pods' sidecars."""
    found = []
    for pod in pods:
        address, labels = _ready_address(pod), _labels(pod)
        if address is None:
            continue
        name = str(pod["metadata"]["name"])
        if router == "istio" and labels.get("version") == version:
            found.append((name, f"http://{_host(address)}:{ENVOY_STATS_PORT}/stats/prometheus"))
        elif router != "istio" and labels.get("app.kubernetes.io/component") == "gateway":
            found.append((name, f"http://{_host(address)}:{PORT}/-/metrics"))
    return found


def drift_targets(pods: Iterable[Mapping[str, Any]], version: str) -> list[Target]:
    """The servers of `version`, whose `/metrics` carry its drift gauges."""
    return [
        (str(pod["metadata"]["name"]), f"http://{_host(address)}:{PORT}/metrics")
        for pod in pods
        if _labels(pod).get("version") == version
        and _labels(pod).get("app.kubernetes.io/component") != "gateway"
        and (address := _ready_address(pod)) is not None
    ]


def fetch_text(url: str, timeout: float) -> str | None:
    """A metrics page's text; None (logged) when it does not answer 200 in time."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (http://<pod>)
            return str(answer.read(METRICS_LIMIT).decode("utf-8", "replace"))
    except (OSError, ValueError) as error:
        log.warning("cannot read %s: %s", url, error)
        return None


@dataclass
class PodMetrics:
    """The figures of each service's pods, with the readings the next interval counts
    from and the time they stand for (in memory: a restarted operator takes a new
    baseline)."""

    list_pods: ListPods
    fetch: Fetch = fetch_text
    timeout: float = 2.0
    _readings: dict[tuple[str, str], tuple[datetime, dict[str, GatewayReading]]] = field(
        default_factory=dict
    )

    def taken_at(self, namespace: str, service: str) -> datetime | None:
        """When the readings the next interval counts from stand for (None: none yet)."""
        kept = self._readings.get((namespace, service))
        return None if kept is None else kept[0]

    def read(
        self,
        namespace: str,
        service: str,
        router: str,
        version: str,
        *,
        counts_from: datetime,
        taken_at: datetime,
    ) -> VersionCounts | None:
        """Read the pods, keep the readings as standing for `taken_at`, and return
        `version`'s counts since the readings kept before, summed over its router's
        pods, when those stand for `counts_from` (None otherwise: this was a baseline)."""
        key = (namespace, service)
        mark, before = self._readings.get(key, (None, {}))
        now: dict[str, GatewayReading] = {}
        parse = envoy_reading if router == "istio" else gateway_reading
        for pod, url in router_targets(self.list_pods(namespace, service), router, version):
            text = self.fetch(url, self.timeout)
            if text is not None:
                now[pod] = parse(text, version if router == "istio" else service)
            elif pod in before:
                now[pod] = before[pod]  # unread now: its counts join the next interval
        self._readings[key] = (taken_at, now)
        if mark != counts_from:
            return None
        total = VersionCounts()
        for pod, reading in now.items():
            total = total.plus(reading.since(before.get(pod)).of(version))
        return total

    def drift(self, namespace: str, service: str, version: str) -> tuple[str, ...]:
        """The drift signals over threshold on any of `version`'s servers."""
        found: set[str] = set()
        for _, url in drift_targets(self.list_pods(namespace, service), version):
            found.update(drifting(self.fetch(url, DRIFT_TIMEOUT) or "", version))
        return tuple(sorted(found))

    def forget(self, namespace: str, service: str) -> None:
        self._readings.pop((namespace, service), None)
