"""The Istio renderer: a route table as `networking.istio.io/v1` VirtualService and
DestinationRule (one subset per version, selected by the pods' `version` label).

What Istio cannot express (sticky weighted assignment, time windows, thresholds) is
decided by the mlpatterns gateway, which names its choice in the
`x-mlpatterns-route` header; the VirtualService then routes on that header first.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.api.modelservice import StringMatch
from mlpatterns.routing.decide import string_matches
from mlpatterns.routing.table import Route, RouteTable, VersionPolicy, Weighted

__all__ = [
    "API",
    "ROUTE_HEADER",
    "SECURITY_API",
    "authorization_policy",
    "destination_rule",
    "gateway_principal",
    "render",
    "virtual_service",
]

ROUTE_HEADER = "x-mlpatterns-route"
API = "networking.istio.io/v1"
SECURITY_API = "security.istio.io/v1"


def _string_match(match: StringMatch) -> dict[str, str]:
    for kind in ("exact", "prefix", "regex"):
        value = getattr(match, kind)
        if value is not None:
            return {kind: value}
    raise AssertionError("a StringMatch always has one kind")  # validated on load


def _policy(policy: VersionPolicy | None) -> dict[str, Any]:
    if policy is None:
        return {}
    rendered: dict[str, Any] = {}
    if policy.timeout_seconds is not None:
        rendered["timeout"] = f"{policy.timeout_seconds:g}s"
    if policy.retries is not None:
        retries: dict[str, Any] = {
            "attempts": policy.retries,
            "retryOn": "5xx,reset,connect-failure",
        }
        if policy.timeout_seconds is not None:
            retries["perTryTimeout"] = f"{policy.timeout_seconds / (policy.retries + 1):g}s"
        rendered["retries"] = retries
    return rendered


def _http_routes(
    table: RouteTable, name: str, match: list[dict[str, Any]], route: Route
) -> list[dict[str, Any]]:
    """`route` rendered; when only one path is mirrored (a follow-up's), preceded by
    the same route for that path alone, with the mirror."""
    path = table.mirror_path
    if table.mirror is None or path is None:
        return [_http_route(table, name, match, route, mirrored=True)]
    plain = _http_route(table, name, match, route, mirrored=False)
    if route.path is not None and not string_matches(route.path, path):
        return [plain]
    exact = {"uri": {"exact": path}}
    conditions = [{**condition, **exact} for condition in match] or [exact]
    return [_http_route(table, f"{name}-mirrored", conditions, route, mirrored=True), plain]


def _http_route(
    table: RouteTable, name: str, match: list[dict[str, Any]], route: Route, *, mirrored: bool
) -> dict[str, Any]:
    rendered: dict[str, Any] = {"name": name}
    if match:
        rendered["match"] = match
    rendered["route"] = [
        {"destination": {"host": table.service, "subset": d.version}, "weight": d.weight}
        for d in route.destinations
    ]
    if table.mirror is not None and mirrored:
        version, percent = table.mirror
        rendered["mirror"] = {"host": table.service, "subset": version}
        rendered["mirrorPercentage"] = {"value": percent}  # explicit: Istio's default is 100
    if len(route.destinations) == 1:  # per-version timeout and retries apply to a single target
        rendered.update(_policy(table.policies.get(route.destinations[0].version)))
    return rendered


def _rule_match(route: Route) -> list[dict[str, Any]]:
    if route.is_default:
        return []
    condition: dict[str, Any] = {}
    if route.headers:
        condition["headers"] = {name: _string_match(m) for name, m in route.headers}
    if route.path is not None:
        condition["uri"] = _string_match(route.path)
    return [condition]


def virtual_service(table: RouteTable, namespace: str | None = None) -> dict[str, Any]:
    http: list[dict[str, Any]] = []
    if table.needs_gateway:
        # the gateway chose: one route per version it can choose, keyed by its header (a
        # version switched off has none, whoever sets the header)
        for version in table.routed:
            single = Route(f"gateway-{version}", (), None, None, (Weighted(version, 100),))
            match = [{"headers": {ROUTE_HEADER: {"exact": version}}}]
            http.extend(_http_routes(table, f"gateway-{version}", match, single))
        http.extend(_http_routes(table, "default", [], table.routes[-1]))
    else:
        for route in table.routes:
            http.extend(_http_routes(table, route.name, _rule_match(route), route))
    return {
        "apiVersion": API,
        "kind": "VirtualService",
        "metadata": _metadata(table, namespace),
        "spec": {"hosts": [table.service], "http": http},
    }


def destination_rule(table: RouteTable, namespace: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "DestinationRule",
        "metadata": _metadata(table, namespace),
        "spec": {
            "host": table.service,
            "subsets": [_subset(v, table.policies.get(v)) for v in table.versions],
        },
    }


def _subset(version: str, policy: VersionPolicy | None) -> dict[str, Any]:
    """A version's subset; its circuit breaker as Envoy's, with the same numbers: the
    connection pool's limits (one pending request at most, so that more are refused
    rather than queued) and outlier detection."""
    subset: dict[str, Any] = {"name": version, "labels": {"version": version}}
    breaker = policy.breaker if policy else None
    if breaker is None:
        return subset
    traffic: dict[str, Any] = {}
    if breaker.max_concurrent is not None:
        limit = breaker.max_concurrent
        traffic["connectionPool"] = {
            "tcp": {"maxConnections": limit},
            "http": {"http2MaxRequests": limit, "http1MaxPendingRequests": 1},
        }
    if breaker.consecutive_errors is not None:
        traffic["outlierDetection"] = {
            "consecutive5xxErrors": breaker.consecutive_errors,
            "interval": "1s",
            "baseEjectionTime": f"{breaker.ejection_seconds:g}s",
            "maxEjectionPercent": 100,
        }
    subset["trafficPolicy"] = traffic
    return subset


def gateway_principal(service_account: str, namespace: str | None) -> str:
    """The gateway's identity as Istio's mTLS names it (any namespace when unknown)."""
    return (
        f"cluster.local/ns/{namespace}/sa/{service_account}"
        if namespace
        else f"*/sa/{service_account}"
    )


def authorization_policy(
    table: RouteTable, service_account: str, namespace: str | None = None
) -> dict[str, Any]:
    """Deny any request carrying `x-mlpatterns-route` to the service's pods unless it
    comes from the gateway's ServiceAccount: otherwise any caller could pick a
    version past the split, the kill switch and the thresholds."""
    metadata = _metadata(table, namespace)
    metadata["name"] = f"{table.service}-route-header"
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": {"mlpatterns.io/service": table.service}},
            "action": "DENY",
            "rules": [
                {
                    "from": [
                        {
                            "source": {
                                "notPrincipals": [gateway_principal(service_account, namespace)]
                            }
                        }
                    ],
                    "when": [{"key": f"request.headers[{ROUTE_HEADER}]", "values": ["*"]}],
                }
            ],
        },
    }


def render(
    table: RouteTable, namespace: str | None = None, gateway_account: str | None = None
) -> list[dict[str, Any]]:
    """DestinationRule and VirtualService; with the gateway deciding (`gateway_account`
    names its ServiceAccount), the AuthorizationPolicy that keeps its header its own."""
    rendered = [destination_rule(table, namespace), virtual_service(table, namespace)]
    if table.needs_gateway and gateway_account:
        rendered.append(authorization_policy(table, gateway_account, namespace))
    return rendered


def _metadata(table: RouteTable, namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": table.service,
        "labels": {
            "app.kubernetes.io/name": table.service,
            "app.kubernetes.io/managed-by": "mlpatterns",
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    return metadata
