"""The route table: a ModelService's traffic policy compiled into one ordered list of
routes, first match wins (as in Istio), default last. The Istio renderer and the
mlpatterns gateway both execute this table, so what is tested locally is what
Istio is told to do.

Parameter-based serving is compiled in: a version switched off (`active: false`)
leaves every route; its share goes to the route's other versions, and a route left
with none falls back to the default route.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mlpatterns.api.breaker import CircuitBreaker
from mlpatterns.api.graph import Graph
from mlpatterns.api.modelservice import Destination, ModelService, StringMatch, TimeWindow
from mlpatterns.api.stages import FOLLOW_UP_PATH, JOBS_PREFIX

__all__ = ["Route", "RouteTable", "RoutingError", "VersionPolicy", "Weighted", "compile_table"]


class RoutingError(ValueError):
    pass


@dataclass(frozen=True)
class Weighted:
    version: str
    weight: int


@dataclass(frozen=True)
class Route:
    name: str
    headers: tuple[tuple[str, StringMatch], ...]
    path: StringMatch | None
    window: TimeWindow | None
    destinations: tuple[Weighted, ...]

    @property
    def is_default(self) -> bool:
        return not self.headers and self.path is None and self.window is None


@dataclass(frozen=True)
class VersionPolicy:
    threshold: float | None
    timeout_seconds: float | None
    retries: int | None
    breaker: CircuitBreaker | None = None


@dataclass(frozen=True)
class RouteTable:
    service: str
    routes: tuple[Route, ...]  # ordered; the last is the default
    mirror: tuple[str, float] | None  # (version, percent)
    sticky_header: str | None
    policies: dict[str, VersionPolicy]
    versions: tuple[str, ...]
    switched_off: frozenset[str] = frozenset()  # `active: false`: no traffic of any kind
    mirror_path: str | None = None  # only requests to this path are mirrored (None: all)
    follow_up: str | None = None  # the mirror is a follow-up: its answers are fetched
    graph: Graph | None = None  # set: the gateway executes this graph for the simple API

    def describe(self) -> dict[str, Any]:
        """The table as plain data: what `GET /-/routes` and `traffic show` print."""
        return {
            "service": self.service,
            "routes": [
                {"name": r.name, "destinations": {d.version: d.weight for d in r.destinations}}
                for r in self.routes
            ],
            "shadow": list(self.mirror) if self.mirror and not self.follow_up else None,
            "follow_up": self.follow_up,
            "graph": self.graph.model_dump(by_alias=True, exclude_none=True)
            if self.graph
            else None,
            "sticky": self.sticky_header,
        }

    @cached_property
    def reads_headers(self) -> bool:
        """Whether a decision looks at the request's headers (a header rule, a sticky
        header): if not, the gateway does not make them a mapping."""
        return self.sticky_header is not None or any(r.headers for r in self.routes)

    @cached_property
    def reads_clock(self) -> bool:
        """Whether a decision looks at the time (a rule's time window)."""
        return any(r.window is not None for r in self.routes)

    @cached_property
    def phase(self) -> str:
        """The traffic policy in force as one line, e.g. `default current=90,challenger=10;
        sticky x-user-id`. Each gateway decision records it, so that a report can tell
        an experiment's phases apart (a shadow phase, then a split)."""
        parts = [
            f"{r.name} " + ",".join(f"{d.version}={d.weight:g}" for d in r.destinations)
            for r in self.routes
        ]
        if self.graph is not None:
            kind = "sequence" if self.graph.sequence else "ensemble"
            parts.append(f"graph {kind} " + ",".join(self.graph.versions))
        if self.follow_up is not None:
            parts.append(f"follow-up {self.follow_up}")
        elif self.mirror is not None:
            parts.append(f"shadow {self.mirror[0]}={self.mirror[1]:g}%")
        if self.sticky_header is not None:
            parts.append(f"sticky {self.sticky_header}")
        return "; ".join(parts)

    @property
    def routed(self) -> tuple[str, ...]:
        """The versions some route or the mirror can reach, in table order: a version
        switched off is in none of them."""
        reachable = {d.version for r in self.routes for d in r.destinations}
        reachable.update(self.graph.versions if self.graph else ())
        if self.mirror is not None:
            reachable.add(self.mirror[0])
        return tuple(v for v in self.versions if v in reachable)

    @property
    def needs_gateway(self) -> bool:
        """What Istio cannot express: sticky weighted assignment, time windows,
        thresholds, a fallback version for what a circuit breaker refuses, a graph."""
        weighted = any(len(r.destinations) > 1 for r in self.routes)
        return (
            (self.sticky_header is not None and weighted)
            or any(r.window is not None for r in self.routes)
            or any(p.threshold is not None for p in self.policies.values())
            or any(p.breaker and p.breaker.fallback for p in self.policies.values())
            or self.graph is not None
        )


def _renormalized(destinations: list[Destination], active: set[str]) -> tuple[Weighted, ...]:
    """The active destinations with weights scaled to add up to 100 (largest remainder)."""
    kept = [d for d in destinations if d.version in active and d.weight > 0]
    total = sum(d.weight for d in kept)
    if not kept or total == 0:
        return ()
    exact = [d.weight * 100 / total for d in kept]
    floors = [int(x) for x in exact]
    order = sorted(range(len(kept)), key=lambda i: (floors[i] - exact[i], i))
    for i in order[: 100 - sum(floors)]:
        floors[i] += 1
    return tuple(Weighted(d.version, w) for d, w in zip(kept, floors, strict=True))


def compile_table(service: ModelService) -> RouteTable:
    spec = service.spec
    active = {v.name for v in spec.versions if v.parameters.active}
    default = _renormalized(spec.default_route(), active)
    if not default:
        # the default route's versions are all off: any active version takes the traffic
        default = _renormalized(
            [Destination(version=v, weight=100) for v in sorted(active)], active
        )
    if not default:
        raise RoutingError(
            f"{service.metadata.name}: every version is switched off (active: false)"
        )
    routes = []
    for index, rule in enumerate(spec.traffic.rules):
        destinations = _renormalized(rule.route, active) or default
        routes.append(
            Route(
                name=f"rule-{index}",
                headers=tuple(sorted(rule.match.headers.items())),
                path=rule.match.path,
                window=rule.match.time,
                destinations=destinations,
            )
        )
    routes.append(Route("default", (), None, None, default))
    shadow = spec.traffic.shadow
    mirror = (shadow.version, shadow.percent) if shadow and shadow.version in active else None
    follow_up = spec.follow_up.version if spec.follow_up else None
    if follow_up is not None and follow_up in active:
        # every simple-API request is copied to it; its jobs are fetched from it
        mirror = (follow_up, 100.0)
        jobs = StringMatch(prefix=JOBS_PREFIX)
        routes.insert(0, Route("follow-up", (), jobs, None, (Weighted(follow_up, 100),)))
    else:
        follow_up = None
    policies = {
        v.name: VersionPolicy(
            v.parameters.threshold,
            v.parameters.timeout_seconds,
            v.parameters.retries,
            v.circuit_breaker,
        )
        for v in spec.versions
    }
    return RouteTable(
        service=service.metadata.name,
        routes=tuple(routes),
        mirror=mirror,
        sticky_header=spec.traffic.sticky.header if spec.traffic.sticky else None,
        policies=policies,
        versions=tuple(v.name for v in spec.versions),
        switched_off=frozenset(v.name for v in spec.versions if v.name not in active),
        mirror_path=FOLLOW_UP_PATH if follow_up else None,
        follow_up=follow_up,
        graph=spec.graph,
    )
