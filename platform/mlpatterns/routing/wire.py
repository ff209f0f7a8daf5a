"""The route table as plain JSON: what the compiled data plane (`dataplane/`, Rust)
executes, the way Envoy executes what Istio's control plane computes. The Python side
compiles (`table.compile_table`), this module writes the result down, and both
executors of `decide` are held to the same conformance cases
(`tests/conformance/decisions.yaml`).

The compiled data plane forwards, mirrors and decides; what it does not execute
(`delegated`) it passes, request by request, to the Python gateway behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpatterns.api.breaker import MAX_EJECTION_SECONDS, CircuitBreaker
from mlpatterns.api.traffic import StringMatch
from mlpatterns.routing.table import RouteTable

__all__ = ["delegated", "table_wire"]


def _match(match: StringMatch) -> dict[str, str]:
    return match.model_dump(exclude_none=True)


def table_wire(table: RouteTable) -> dict[str, Any]:
    """The table's routes, mirror, stickiness, and per-version timeouts, retries and
    circuit breakers."""
    return {
        "service": table.service,
        "phase": table.phase,
        "routes": [
            {
                "name": route.name,
                "headers": [[name, _match(match)] for name, match in route.headers],
                "path": _match(route.path) if route.path is not None else None,
                "window": {
                    "timezone": route.window.timezone,
                    "minutes": [list(span) for span in route.window.minutes()],
                }
                if route.window is not None
                else None,
                "destinations": [[d.version, d.weight] for d in route.destinations],
            }
            for route in table.routes
        ],
        "mirror": list(table.mirror) if table.mirror is not None else None,
        "mirror_path": table.mirror_path,
        "sticky_header": table.sticky_header,
        "policies": {
            version: {
                "timeout_seconds": p.timeout_seconds,
                "retries": p.retries,
                "breaker": _breaker(p.breaker) if p.breaker is not None else None,
            }
            for version, p in table.policies.items()
        },
        "switched_off": sorted(table.switched_off),
    }


def _breaker(breaker: CircuitBreaker) -> dict[str, Any]:
    return {
        "max_concurrent": breaker.max_concurrent,
        "consecutive_errors": breaker.consecutive_errors,
        "ejection_seconds": breaker.ejection_seconds,
        "max_ejection_seconds": MAX_EJECTION_SECONDS,
        "fallback": breaker.fallback,
    }


def delegated(table: RouteTable, upstreams: Mapping[str, str]) -> str | None:
    """Why the compiled data plane passes this table's requests to the Python gateway
    (None: it executes them itself)."""
    if table.graph is not None:
        return "an inference graph"
    if table.follow_up is not None:
        return "a follow-up"
    for version, policy in table.policies.items():
        if policy.threshold is not None:
            return f"{version}'s threshold"
    for version, url in upstreams.items():
        if not url.startswith("http://"):
            return f"{version}'s upstream is not plain http"
    return None
