"""A rollout's figures read straight from the pods: which pods and URLs, Envoy's
text, and the per-pod differences summed into an interval's counts; then the
operator's tick, which takes a baseline first and analyses from it. The pods and
their metrics texts are inputs here (lists and strings); the real node's
walkthrough reads real gateway pods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlpatterns.operator.rollout import RolloutFigures, tick
from mlpatterns.operator.scrape import PodMetrics, drift_targets, router_targets
from mlpatterns.rollout.observe import bucket_quantile, envoy_reading
from mlpatterns.rollout.status import status_data
from tests.unit.test_rollout import service

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def pod(name: str, ip: str | None, *, ready: bool = True, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


GATEWAY = {"app.kubernetes.io/component": "gateway"}
SERVER = {"app.kubernetes.io/component": "server"}
PODS = [
    pod("iris-gateway-1", "10.244.0.5", **GATEWAY),
    pod("iris-gateway-2", "10.244.0.6", **GATEWAY),
    pod("iris-gateway-3", "10.244.0.7", ready=False, **GATEWAY),
    pod("iris-b-1", "10.244.0.8", version="b", **SERVER),
    pod("iris-b-2", None, version="b", **SERVER),
    pod("iris-a-1", "fd00::9", version="a", **SERVER),
]


def test_the_router_pods_and_the_candidate_servers_are_read_when_ready() -> None:
    assert router_targets(PODS, "gateway", "b") == [
        ("iris-gateway-1", "http://10.244.0.5:8080/-/metrics"),
        ("iris-gateway-2", "http://10.244.0.6:8080/-/metrics"),
    ]
    assert router_targets(PODS, "istio", "b") == [
        ("iris-b-1", "http://10.244.0.8:15090/stats/prometheus")
    ]
    assert router_targets(PODS, "istio", "a") == [
        ("iris-a-1", "http://[fd00::9]:15090/stats/prometheus")
    ]
    assert drift_targets(PODS, "b") == [("iris-b-1", "http://10.244.0.8:8080/metrics")]
    leaving = {**PODS[0], "metadata": {**PODS[0]["metadata"], "deletionTimestamp": "x"}}
    assert router_targets([leaving], "gateway", "b") == []


ENVOY = """\
# TYPE istio_requests_total counter
istio_requests_total{reporter="destination",response_code="200",source_workload="gw"} 90
istio_requests_total{reporter="destination",response_code="503",source_workload="gw"} 10
istio_requests_total{reporter="source",response_code="200",destination_workload="x"} 500
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200",le="10"} 50
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200",le="100"} 90
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200",le="+Inf"} 90
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="503",le="10"} 0
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="503",le="100"} 10
istio_request_duration_milliseconds_bucket{reporter="destination",response_code="503",le="+Inf"} 10
"""


def test_an_istio_sidecar_counts_what_its_workload_received() -> None:
    counts = envoy_reading(ENVOY, "b").of("b")
    assert (counts.requests, counts.errors, counts.shadow_errors) == (100, 10, 10)
    assert dict(counts.buckets)[0.1] == 100  # milliseconds become seconds
    assert bucket_quantile(0.5, counts.buckets) == pytest.approx(0.01)


def gateway_text(requests: int, errors: int) -> str:
    return f"""\
mlpatterns_gateway_requests_total{{service="iris",route="default",version="b",status="200"}} {requests - errors}
mlpatterns_gateway_requests_total{{service="iris",route="default",version="b",status="500"}} {errors}
mlpatterns_gateway_request_duration_seconds_bucket{{service="iris",version="b",le="0.1"}} {requests}
mlpatterns_gateway_request_duration_seconds_bucket{{service="iris",version="b",le="+Inf"}} {requests}
"""  # noqa: E501


class Pods:
    """Pods and the texts their metrics answer, as the test sets them."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods, self.texts = pods, dict[str, str | None]()

    def list(self, namespace: str, service: str) -> list[dict[str, Any]]:
        return self.pods

    def fetch(self, url: str, timeout: float) -> str | None:
        return self.texts.get(url.split("/")[2].split(":")[0])


def test_an_interval_sums_each_pods_difference_from_its_last_reading() -> None:
    cluster = Pods(PODS[:2])
    metrics = PodMetrics(cluster.list, cluster.fetch)
    cluster.texts = {"10.244.0.5": gateway_text(100, 0), "10.244.0.6": gateway_text(50, 5)}
    t1, t2, t3 = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20), T0 + timedelta(seconds=30)
    assert metrics.read("ns", "iris", "gateway", "b", counts_from=T0, taken_at=T0) is None
    assert metrics.taken_at("ns", "iris") == T0

    cluster.texts = {"10.244.0.5": gateway_text(130, 3), "10.244.0.6": gateway_text(20, 2)}
    counts = metrics.read("ns", "iris", "gateway", "b", counts_from=T0, taken_at=t1)
    assert counts is not None  # the second pod restarted: its 20 count from zero
    assert (counts.requests, counts.errors) == (30 + 20, 3 + 2)
    assert dict(counts.buckets)[0.1] == 50

    cluster.pods = [*PODS[:2], pod("iris-gateway-4", "10.244.0.10", **GATEWAY)]
    cluster.texts = {"10.244.0.5": None, "10.244.0.6": gateway_text(30, 2),
                     "10.244.0.10": gateway_text(7, 0)}  # fmt: skip
    counts = metrics.read("ns", "iris", "gateway", "b", counts_from=t1, taken_at=t2)
    assert counts is not None  # a pod unread keeps its reading; a new one counts from zero
    assert counts.requests == 10 + 7

    cluster.texts["10.244.0.5"] = gateway_text(140, 3)
    counts = metrics.read("ns", "iris", "gateway", "b", counts_from=t2, taken_at=t3)
    assert counts is not None
    assert counts.requests == 10  # the unread pod's requests join the next interval
    stale = metrics.read("ns", "iris", "gateway", "b", counts_from=T0, taken_at=t3)
    assert stale is None  # readings that stand for another time are a new baseline


def test_the_operator_tick_takes_a_baseline_then_analyses_from_the_pods() -> None:
    svc = service(
        steps=[{"weight": 10}, {"weight": 50}],
        analysis={"intervalSeconds": 10, "minRequests": 20, "failureLimit": 0},
    )
    svc = svc.model_copy(update={"metadata": svc.metadata.model_copy(update={"namespace": "ns"})})
    cluster = Pods([PODS[0], pod("iris-b-1", "10.244.0.8", version="b", **SERVER)])
    cluster.texts = {"10.244.0.5": gateway_text(0, 0), "10.244.0.8": ""}
    pods = PodMetrics(cluster.list, cluster.fetch)
    figures = RolloutFigures(None, None, pods)
    body: dict[str, Any] = {"metadata": {"name": "iris", "namespace": "ns"}}

    recorded, status, _ = tick(svc, body, figures, "gateway", T0)
    assert (recorded, status.phase, status.step) == (None, "Progressing", 0)
    assert pods.taken_at("ns", "iris") == T0  # the step's baseline, no analysis yet

    body["status"] = {"rollout": status_data(status)}
    cluster.texts["10.244.0.5"] = gateway_text(40, 20)  # half the canary's answers fail
    _, status, told = tick(svc, body, figures, "gateway", T0 + timedelta(seconds=11))
    assert status.last_analysis is not None
    assert (status.phase, told[-1].reason) == ("RolledBack", "RolledBack"), status.message
    assert "errorRate 0.5" in status.message

    body["status"] = {"rollout": status_data(status)}
    tick(svc, body, figures, "gateway", T0 + timedelta(seconds=12))
    assert pods.taken_at("ns", "iris") is None  # an ended rollout keeps no readings
