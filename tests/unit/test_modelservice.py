"""The ModelService resource: the design's example parses, and every mistake gets a
message that names the field and says how to fix it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from mlpatterns.api.load import ModelServiceError, dump_model_service, parse_model_service
from mlpatterns.api.schema import openapi_v3_schema

pytestmark = pytest.mark.unit

EXAMPLE = yaml.safe_load("""
apiVersion: mlpatterns.io/v1alpha1
kind: ModelService
metadata: {name: iris}
spec:
  pattern: synchronous
  versions:
    - name: svc
      model: {uri: "models:/iris/1.0.0"}
      replicas: 2
    - name: rf
      image: "registry.local/iris-rf:1.1.0"
      parameters: {threshold: 0.9, active: true}
  traffic:
    rules:
      - match: {headers: {x-region: {exact: eu}}}
        route: [{version: rf}]
    split: [{version: svc, weight: 90}, {version: rf, weight: 10}]
    sticky: {header: x-user-id}
    shadow: {version: rf, percent: 100}
  logging: {predictions: true}
""")


def with_changes(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    change(data)
    return data


def test_the_design_example_parses_and_round_trips() -> None:
    service = parse_model_service(EXAMPLE)
    assert [v.name for v in service.spec.versions] == ["svc", "rf"]
    assert service.spec.traffic.split[1].weight == 10
    assert service.spec.versions[1].parameters.threshold == 0.9
    again = parse_model_service(yaml.safe_load(dump_model_service(service)))
    assert again == service


MISTAKES = [
    (
        lambda d: d["spec"]["traffic"]["split"].__setitem__(1, {"version": "xgb", "weight": 10}),
        "spec: traffic.split names version 'xgb', which is not in spec.versions ['rf', 'svc']",
    ),
    (
        lambda d: d["spec"]["traffic"]["split"].__setitem__(1, {"version": "rf", "weight": -5}),
        "spec.traffic.split.1.weight: Input should be greater than or equal to 0",
    ),
    (
        lambda d: d["spec"]["traffic"].__setitem__(
            "split", [{"version": "svc", "weight": 0}, {"version": "rf", "weight": 0}]
        ),
        "all weights are 0, so no version would answer",
    ),
    (
        lambda d: d["spec"]["traffic"].__setitem__(
            "split", [{"version": "svc", "weight": 60}, {"version": "rf", "weight": 10}]
        ),
        "weights add up to 70; they must add up to 100",
    ),
    (
        lambda d: d["spec"]["traffic"].__setitem__("split", [{"version": "rf", "weight": 100}]),
        "which is also the only version answering them",
    ),
    (
        lambda d: d["spec"]["traffic"]["rules"][0]["match"].__setitem__(
            "headers", {"X-Region": {"exact": "eu"}}
        ),
        "header name 'X-Region' must be lowercase (HTTP/2 and Istio match lowercase names): "
        "write 'x-region'",
    ),
    (
        lambda d: d["spec"]["traffic"].__setitem__("sticky", {"header": "X-User"}),
        "sticky header 'X-User' must be lowercase",
    ),
    (
        lambda d: d["spec"]["traffic"]["rules"][0]["match"]["headers"].__setitem__(
            "x-region", {"regex": "(eu"}
        ),
        "regex '(eu' is not RE2 syntax",
    ),
    (
        lambda d: d["spec"]["traffic"]["rules"][0]["match"]["headers"].__setitem__(
            "x-region", {"regex": "(?=eu).*"}
        ),
        "regex '(?=eu).*' is not RE2 syntax (invalid perl operator: (?=); Istio and the "
        "gateway use RE2: no lookaround, no backreferences",
    ),
    (
        lambda d: d["spec"]["traffic"]["rules"][0]["match"]["headers"].__setitem__(
            "x-region", {"regex": "(e)\\1"}
        ),
        "is not RE2 syntax (invalid escape sequence",
    ),
    (
        lambda d: d["spec"]["traffic"]["rules"][0]["match"]["headers"].__setitem__(
            "x-region", {"exact": "eu", "prefix": "e"}
        ),
        "a match takes exactly one of exact, prefix or regex",
    ),
    (
        lambda d: d["spec"]["versions"][0].__setitem__("image", "registry.local/x:1"),
        "version 'svc': give exactly one of `model`",
    ),
    (
        lambda d: d["spec"]["versions"][1].__setitem__("name", "svc"),
        "version names must be unique; repeated: ['svc']",
    ),
    (
        lambda d: d["spec"]["versions"][0].__setitem__("name", "SVC_1"),
        "spec.versions.0.name: String should match pattern",
    ),
    (
        lambda d: d["spec"].__setitem__("pattern", "streaming"),
        "spec.pattern: Input should be 'web-single', 'synchronous'",
    ),
    (
        lambda d: d["spec"].__setitem__("replicas", 3),
        "spec.replicas: Extra inputs are not permitted",
    ),
    (
        lambda d: d["spec"]["versions"][0].__setitem__("circuitBreaker", {"ejectionSeconds": 5}),
        "circuitBreaker needs maxConcurrent (requests in flight at most), consecutiveErrors",
    ),
    (
        lambda d: d["spec"]["versions"][0].__setitem__(
            "circuitBreaker", {"maxConcurrent": 8, "fallback": "xgb"}
        ),
        "versions[svc].circuitBreaker.fallback names version 'xgb', which is not in",
    ),
    (
        lambda d: d["spec"]["versions"][0].__setitem__(
            "circuitBreaker", {"maxConcurrent": 8, "fallback": "svc"}
        ),
        "versions[svc].circuitBreaker.fallback is the version itself",
    ),
    (
        lambda d: [
            d["spec"]["versions"][0].__setitem__(
                "circuitBreaker", {"maxConcurrent": 8, "fallback": "rf"}
            ),
            d["spec"]["versions"][1].__setitem__(
                "circuitBreaker", {"consecutiveErrors": 3, "fallback": "svc"}
            ),
        ],
        "versions[svc].circuitBreaker.fallback is 'rf', which falls back to 'svc' in turn",
    ),
    (
        lambda d: d["spec"]["versions"][0].__setitem__(
            "circuitBreaker", {"consecutiveErrors": 3, "ejectionSeconds": 600}
        ),
        "ejectionSeconds: Input should be less than or equal to 300",
    ),
]


@pytest.mark.parametrize(("change", "message"), MISTAKES)
def test_mistakes_are_explained(change: Any, message: str) -> None:
    with pytest.raises(ModelServiceError) as caught:
        parse_model_service(with_changes(change), "iris.yaml")
    assert "iris.yaml is not a valid ModelService" in str(caught.value)
    assert any(message in problem for problem in caught.value.problems), caught.value.problems


def window(
    start: str, end: str, days: list[str] | None = None, zone: str = "UTC"
) -> dict[str, Any]:
    return {"time": {"start": start, "end": end, "timezone": zone, "days": days or ["mon", "tue"]}}


def rules(*windows: dict[str, Any]) -> dict[str, Any]:
    return with_changes(
        lambda d: d["spec"]["traffic"].__setitem__(
            "rules", [{"match": w, "route": [{"version": "rf"}]} for w in windows]
        )
    )


def test_time_windows() -> None:
    parse_model_service(rules(window("08:00", "12:00"), window("12:00", "18:00")))  # touching
    parse_model_service(rules(window("22:00", "02:00", ["mon"]), window("03:00", "04:00", ["tue"])))
    with pytest.raises(ModelServiceError, match="overlapping time windows"):
        parse_model_service(rules(window("08:00", "12:00"), window("11:00", "13:00")))
    with pytest.raises(ModelServiceError, match="overlapping time windows"):  # wraps into Tuesday
        parse_model_service(
            rules(window("22:00", "02:00", ["mon"]), window("01:00", "03:00", ["tue"]))
        )
    with pytest.raises(ModelServiceError, match="unknown timezone 'Mars/Olympus'"):
        parse_model_service(rules(window("08:00", "12:00", zone="Mars/Olympus")))


def test_the_crd_schema_is_structural_and_deterministic() -> None:
    schema = openapi_v3_schema()
    assert json.dumps(schema, sort_keys=True) == json.dumps(openapi_v3_schema(), sort_keys=True)
    text = json.dumps(schema)
    assert "$ref" not in text
    assert '"type": "null"' not in text

    def walk(node: dict[str, Any], path: str) -> None:
        assert "type" in node or "anyOf" in node, f"{path} has no type"
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}")

    walk(schema, "")
    spec = schema["properties"]["spec"]["properties"]
    assert spec["pattern"]["enum"] == [
        "web-single",
        "synchronous",
        "asynchronous",
        "batch",
        "preprocess-prediction",
    ]
    assert spec["versions"]["items"]["properties"]["replicas"]["minimum"] == 0


def test_every_pattern_manifest_loads() -> None:
    from pathlib import Path

    from mlpatterns.api.load import load_model_service

    manifests = sorted(
        Path(__file__).resolve().parents[2].glob("manifests/patterns/*/modelservice.yaml")
    )
    assert len(manifests) == 16
    names = [load_model_service(manifest).metadata.name for manifest in manifests]
    assert all(name.startswith("iris") for name in names)
    assert len(set(names)) == len(names)  # one namespace can hold every example
