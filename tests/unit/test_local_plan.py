"""The embedded mode's plan: which local processes a ModelService becomes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.local.plan import Plan, PlanError, image_folder, plan

pytestmark = pytest.mark.unit


def make(pattern: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "iris"},
        "spec": {
            "pattern": pattern,
            "versions": [
                {"name": "a", "model": {"uri": "models:/iris@production"}},
                {"name": "b", "model": {"uri": "models:/iris@candidate"}},
            ],
            **spec,
        },
    }


def planned(data: dict[str, Any], tmp_path: Path, **options: Any) -> Plan:
    ports = itertools.count(9001)
    return plan(
        parse_model_service(data),
        file=tmp_path / "ms.yaml",
        home=tmp_path,
        gateway_port=9000,
        next_port=lambda: next(ports),
        **options,
    )


def names(result: Plan) -> list[str]:
    return [p.name for p in result.processes]


def test_synchronous_is_a_server_per_version_behind_the_gateway(tmp_path: Path) -> None:
    result = planned(make("synchronous"), tmp_path)
    assert names(result) == ["model-a", "model-b", "gateway"]
    assert result.upstreams == {"a": "http://127.0.0.1:9001", "b": "http://127.0.0.1:9002"}
    server = result.processes[0]
    assert server.argv[:3] == ("mlpatterns", "serve", "model")
    assert server.argv[server.argv.index("--version") :][:2] == ("--version", "a")
    assert server.ready_url == "http://127.0.0.1:9001/v2/health/ready"
    gateway = result.processes[-1].argv
    assert "a=http://127.0.0.1:9001" in gateway
    assert gateway[gateway.index("--port") + 1] == "9000"
    assert result.gateway_url == "http://127.0.0.1:9000"


def test_preprocess_prediction_puts_the_preprocess_server_in_front(tmp_path: Path) -> None:
    result = planned(make("preprocess-prediction"), tmp_path)
    assert names(result)[:2] == ["predictor-a", "preprocess-a"]
    predictor, preprocess = result.processes[:2]
    assert "predictor.onnx" in predictor.argv
    assert "http://127.0.0.1:9001" in preprocess.argv  # it calls the predictor
    assert result.upstreams["a"] == "http://127.0.0.1:9002"


def test_asynchronous_gives_each_version_its_own_queue(tmp_path: Path) -> None:
    data = make("asynchronous", traffic={"split": [{"version": "a", "weight": 100}]})
    result = planned(data, tmp_path)
    assert names(result) == ["async-api-a", "worker-a", "async-api-b", "worker-b", "gateway"]
    queue = result.processes[0].argv[result.processes[0].argv.index("--queue") + 1]
    assert queue == f"sqlite:///{tmp_path / 'queue' / 'iris-a.db'}"
    assert queue in result.processes[1].argv


def test_batch_is_a_scheduled_job_of_the_answering_version(tmp_path: Path) -> None:
    data = make(
        "batch",
        batch={"schedule": "0 * * * *", "input": "rows.csv", "output": "out.db"},
        traffic={"split": [{"version": "b", "weight": 100}]},
    )
    result = planned(data, tmp_path)
    assert names(result) == ["batch-b"]
    assert result.processes[0].schedule == "0 * * * *"
    assert result.gateway_url is None


def test_model_in_image_runs_from_its_build_context(tmp_path: Path) -> None:
    data = make("synchronous")
    data["spec"]["versions"][1] = {"name": "b", "image": "registry.local/iris:1.1.0"}
    with pytest.raises(PlanError, match="mlpatterns build-context"):
        planned(data, tmp_path)
    context = image_folder(tmp_path, "registry.local/iris:1.1.0")
    (context / "model").mkdir(parents=True)
    result = planned(data, tmp_path)
    assert str(context / "model") in result.processes[1].argv
    elsewhere = tmp_path / "ctx"
    (elsewhere / "model").mkdir(parents=True)
    mapped = planned(data, tmp_path, images={"registry.local/iris:1.1.0": elsewhere})
    assert str(elsewhere / "model") in mapped.processes[1].argv


@pytest.mark.parametrize(
    ("pattern", "extra", "message"),
    [
        ("batch", {}, "pattern batch needs spec.batch"),
        (
            "synchronous",
            {"batch": {"schedule": "0 * * * *", "input": "a.csv", "output": "b.db"}},
            "applies to pattern batch only",
        ),
        (
            "asynchronous",
            {
                "traffic": {
                    "split": [{"version": "a", "weight": 50}, {"version": "b", "weight": 50}]
                }
            },
            "needs traffic.sticky",
        ),
    ],
)
def test_pattern_rules(pattern: str, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelServiceError, match=message):
        parse_model_service(make(pattern, **extra))
