"""The route table and its Istio rendering, for the catalog's traffic patterns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlpatterns.api.load import parse_model_service
from mlpatterns.routing.istio import ROUTE_HEADER, render
from mlpatterns.routing.table import RoutingError, compile_table
from tests.unit.test_modelservice import EXAMPLE

pytestmark = pytest.mark.unit


def service(change: Any = None) -> Any:
    data = copy.deepcopy(EXAMPLE)
    if change:
        change(data)
    return parse_model_service(data)


def http_routes(data: Any) -> list[dict[str, Any]]:
    _, virtual = render(compile_table(data), namespace="ml")
    routes: list[dict[str, Any]] = virtual["spec"]["http"]
    return routes


def istio_native(d: dict[str, Any]) -> None:
    """Drop what only the gateway can do: the sticky split and rf's threshold."""
    del d["spec"]["traffic"]["sticky"]
    del d["spec"]["versions"][1]["parameters"]["threshold"]


def test_condition_split_and_shadow_render_natively() -> None:
    routes = http_routes(service(istio_native))
    assert [r["name"] for r in routes] == ["rule-0", "default"]
    assert routes[0]["match"] == [{"headers": {"x-region": {"exact": "eu"}}}]
    assert routes[0]["route"] == [{"destination": {"host": "iris", "subset": "rf"}, "weight": 100}]
    assert [(r["destination"]["subset"], r["weight"]) for r in routes[1]["route"]] == [
        ("svc", 90),
        ("rf", 10),
    ]
    for route in routes:  # the shadow copies every request, with the percentage explicit
        assert route["mirror"] == {"host": "iris", "subset": "rf"}
        assert route["mirrorPercentage"] == {"value": 100.0}


def test_destination_rule_has_a_subset_per_version() -> None:
    rule, _ = render(compile_table(service()), namespace="ml")
    assert rule["spec"]["subsets"] == [
        {"name": "svc", "labels": {"version": "svc"}},
        {"name": "rf", "labels": {"version": "rf"}},
    ]
    assert rule["metadata"]["namespace"] == "ml"


def test_sticky_weights_are_left_to_the_gateway() -> None:
    table = compile_table(service())  # the design example is sticky on x-user-id
    assert table.needs_gateway
    routes = http_routes(service())
    assert [r["name"] for r in routes] == ["gateway-svc", "gateway-rf", "default"]
    assert routes[0]["match"] == [{"headers": {ROUTE_HEADER: {"exact": "svc"}}}]


def test_time_windows_and_thresholds_need_the_gateway() -> None:
    windowed = service(
        lambda d: (
            istio_native(d),
            d["spec"]["traffic"]["rules"][0]["match"].update(
                {"time": {"start": "08:00", "end": "18:00", "timezone": "Europe/Berlin"}}
            ),
        )
    )
    assert compile_table(windowed).needs_gateway
    plain = service(istio_native)
    assert not compile_table(plain).needs_gateway


def test_kill_switch_moves_traffic_to_the_fallback() -> None:
    off = service(
        lambda d: (istio_native(d), d["spec"]["versions"][1]["parameters"].update(active=False))
    )
    table = compile_table(off)
    assert [(d.version, d.weight) for d in table.routes[-1].destinations] == [("svc", 100)]
    assert [(d.version, d.weight) for d in table.routes[0].destinations] == [
        ("svc", 100)
    ]  # rule fell back
    assert table.mirror is None  # a switched-off version is not shadowed either
    every_version_off = service(
        lambda d: [
            v["parameters"].update(active=False)
            if "parameters" in v
            else v.update(parameters={"active": False})
            for v in d["spec"]["versions"]
        ]
    )
    with pytest.raises(RoutingError, match="every version is switched off"):
        compile_table(every_version_off)


def test_weights_renormalize_to_one_hundred() -> None:
    def three(d: dict[str, Any]) -> None:
        istio_native(d)
        d["spec"]["versions"].append(
            {"name": "gb", "image": "registry.local/gb:1", "parameters": {"active": False}}
        )
        d["spec"]["traffic"]["split"] = [
            {"version": "svc", "weight": 45},
            {"version": "rf", "weight": 22},
            {"version": "gb", "weight": 33},
        ]

    weights = [d.weight for d in compile_table(service(three)).routes[-1].destinations]
    assert weights == [67, 33]
    assert sum(weights) == 100


def test_timeouts_and_retries_on_single_version_routes() -> None:
    tuned = service(
        lambda d: (
            istio_native(d),
            d["spec"]["versions"][1]["parameters"].update(timeoutSeconds=2, retries=1),
        )
    )
    rule = http_routes(tuned)[0]
    assert rule["timeout"] == "2s"
    assert rule["retries"] == {
        "attempts": 1,
        "retryOn": "5xx,reset,connect-failure",
        "perTryTimeout": "1s",
    }


def test_path_rules_render_as_uri_matches() -> None:
    pathed = service(
        lambda d: (
            istio_native(d),
            d["spec"]["traffic"]["rules"][0].update(match={"path": {"prefix": "/v2/models/iris"}}),
        )
    )
    assert http_routes(pathed)[0]["match"] == [{"uri": {"prefix": "/v2/models/iris"}}]


@pytest.mark.attack
def test_a_switched_off_version_has_no_route_even_by_header() -> None:
    """Istio routed `x-mlpatterns-route: rf` to rf with rf switched off: any caller
    could bypass the kill switch. Now the header only reaches versions in use."""
    off = service(lambda d: d["spec"]["versions"][1]["parameters"].update(active=False))
    table = compile_table(off)
    assert table.needs_gateway  # still sticky: the gateway decides, Istio follows
    assert table.routed == ("svc",)
    assert [r["name"] for r in http_routes(off)] == ["gateway-svc", "default"]


@pytest.mark.attack
def test_the_route_header_is_honoured_only_from_the_gateway() -> None:
    table = compile_table(service())
    *_, policy = render(table, namespace="ml", gateway_account="iris-gateway")
    assert policy["kind"] == "AuthorizationPolicy"
    assert policy["spec"]["action"] == "DENY"
    [rule] = policy["spec"]["rules"]
    assert rule["from"] == [{"source": {"notPrincipals": ["cluster.local/ns/ml/sa/iris-gateway"]}}]
    assert rule["when"] == [{"key": f"request.headers[{ROUTE_HEADER}]", "values": ["*"]}]
    assert policy["spec"]["selector"] == {"matchLabels": {"mlpatterns.io/service": "iris"}}
    native = compile_table(service(istio_native))  # no gateway, no header to guard
    assert [o["kind"] for o in render(native, "ml", "iris-gateway")] == [
        "DestinationRule",
        "VirtualService",
    ]


def with_circuit_breakers(d: dict[str, Any]) -> None:
    istio_native(d)
    d["spec"]["versions"][0]["circuitBreaker"] = {
        "maxConcurrent": 64,
        "consecutiveErrors": 5,
        "ejectionSeconds": 15,
    }
    d["spec"]["versions"][1]["circuitBreaker"] = {"consecutiveErrors": 2}


def test_circuit_breakers_render_as_the_subsets_pool_and_outlier_detection() -> None:
    table = compile_table(service(with_circuit_breakers))
    assert not table.needs_gateway  # Istio does both itself
    rule, _ = render(table, namespace="ml")
    svc, rf = rule["spec"]["subsets"]
    assert svc["trafficPolicy"] == {
        "connectionPool": {
            "tcp": {"maxConnections": 64},
            "http": {"http2MaxRequests": 64, "http1MaxPendingRequests": 1},
        },
        "outlierDetection": {
            "consecutive5xxErrors": 5,
            "interval": "1s",
            "baseEjectionTime": "15s",
            "maxEjectionPercent": 100,
        },
    }
    assert rf["trafficPolicy"] == {
        "outlierDetection": {
            "consecutive5xxErrors": 2,
            "interval": "1s",
            "baseEjectionTime": "30s",
            "maxEjectionPercent": 100,
        }
    }


def test_a_fallback_version_needs_the_gateway() -> None:
    def fallback(d: dict[str, Any]) -> None:
        istio_native(d)
        d["spec"]["versions"][0]["circuitBreaker"] = {"maxConcurrent": 8, "fallback": "rf"}

    assert compile_table(service(fallback)).needs_gateway
