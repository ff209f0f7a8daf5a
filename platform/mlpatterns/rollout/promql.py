"""The PromQL a rollout's analysis asks Prometheus, and how its answers are read.

The figures are the candidate's over the analysis interval, from the router's own
metrics: the mlpatterns gateway's (`router: gateway`) or Envoy's standard Istio
metrics (`router: istio`, where a shadow step's copies are the only requests the
candidate's workload gets, so its 5xx are the failed copies). Drift comes from the
model server's gauges with the thresholds of the chart's alert rules. A series
without a `namespace` label (a Prometheus scraping processes, not pods) matches too.
"""

from __future__ import annotations

from typing import Any, Literal

from mlpatterns.rollout.observe import DRIFT_MIN_ROWS, DRIFT_PSI

__all__ = ["Queries", "queries", "scalar", "signals"]

Queries = dict[Literal["requests", "errors", "shadow_errors", "p99", "drift"], str]


def _selector(namespace: str, service: str, version: str) -> str:
    return f'service="{service}",version="{version}",namespace=~"{namespace}|"'


def queries(
    router: str, namespace: str, service: str, version: str, window_seconds: float
) -> Queries:
    """What to ask for `version` of `service` over the last `window_seconds`."""
    window = f"[{max(1, round(window_seconds))}s]"
    ours = _selector(namespace, service, version)
    drift = (
        f"(mlpatterns_feature_psi{{{ours}}} > {DRIFT_PSI} or mlpatterns_class_mix_psi{{{ours}}}"
        f" > {DRIFT_PSI}) and on (service, version) mlpatterns_drift_window_rows{{{ours}}}"
        f" >= {DRIFT_MIN_ROWS}"
    )
    if router == "istio":
        envoy = (
            f'reporter="destination",destination_workload_namespace="{namespace}",'
            f'destination_workload="{service}-{version}"'
        )
        errors = f'sum(increase(istio_requests_total{{{envoy},response_code=~"5.."}}{window}))'
        return {
            "requests": f"sum(increase(istio_requests_total{{{envoy}}}{window}))",
            "errors": errors,
            "shadow_errors": errors,
            "p99": "histogram_quantile(0.99, sum by (le) (increase("
            f"istio_request_duration_milliseconds_bucket{{{envoy}}}{window}))) / 1000",
            "drift": drift,
        }
    return {
        "requests": f"sum(increase(mlpatterns_gateway_requests_total{{{ours}}}{window}))",
        "errors": (
            f'sum(increase(mlpatterns_gateway_requests_total{{{ours},status=~"5.."}}{window}))'
        ),
        "shadow_errors": f"sum(increase(mlpatterns_gateway_shadow_errors_total{{{ours}}}{window}))",
        "p99": "histogram_quantile(0.99, sum by (le) (increase("
        f"mlpatterns_gateway_request_duration_seconds_bucket{{{ours}}}{window})))",
        "drift": drift,
    }


def _vector(answer: dict[str, Any]) -> list[dict[str, Any]]:
    if answer.get("status") != "success":
        raise ValueError(f"Prometheus answered {answer.get('error') or answer.get('status')}")
    data = answer.get("data") or {}
    if data.get("resultType") != "vector":
        raise ValueError(f"expected an instant vector, got {data.get('resultType')}")
    result: list[dict[str, Any]] = data.get("result") or []
    return result


def scalar(answer: dict[str, Any]) -> float | None:
    """The one value of an aggregated query's answer (None: no series, or NaN)."""
    result = _vector(answer)
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: a quantile of no observations


def signals(answer: dict[str, Any]) -> tuple[str, ...]:
    """The drift query's series as signals: `feature <name>` or `class mix`."""
    found = []
    for series in _vector(answer):
        metric = series.get("metric") or {}
        feature = metric.get("feature")
        found.append(f"feature {feature}" if feature else "class mix")
    return tuple(sorted(found))
