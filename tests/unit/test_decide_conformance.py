"""The decision conformance cases (`tests/conformance/decisions.yaml`) against every
executor of the route table: Python's `routing/decide.py` and the compiled data
plane's `table.rs` (run as `mlpatterns-dataplane decide`)."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from mlpatterns.api.load import parse_model_service
from mlpatterns.routing.decide import decide
from mlpatterns.routing.table import RouteTable, compile_table
from mlpatterns.routing.wire import table_wire
from tests.support.dataplane import dataplane_binary

pytestmark = pytest.mark.unit
CASES = yaml.safe_load((Path(__file__).parents[1] / "conformance" / "decisions.yaml").read_text())
DEFAULTS = {
    "headers": {},
    "path": "/predict",
    "now": "2026-11-30T12:00:00+00:00",
    "draw": 0.5,
    "shadow_draw": 0.5,
}


def table_of(case: dict[str, Any]) -> RouteTable:
    versions = []
    for entry in case.get("versions", ["svc", "rf"]):
        name, active = (entry, True) if isinstance(entry, str) else (entry["name"], entry["active"])
        versions.append(
            {
                "name": name,
                "model": {"uri": f"models:/iris/{name}"},
                "parameters": {"active": active},
            }
        )
    spec: dict[str, Any] = {"versions": versions, "traffic": case["traffic"]}
    if "follow_up" in case:
        spec["pattern"] = "synchronous"
        spec["followUp"] = {"version": case["follow_up"]}
    service = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": "iris"},
        "spec": spec,
    }
    return compile_table(parse_model_service(service))


def requests_of(case: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**DEFAULTS, **request} for request in case["requests"]]


def python_decisions(table: RouteTable, requests: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        list(
            decide(
                table,
                r["headers"],
                r["path"],
                datetime.fromisoformat(r["now"]),
                r["draw"],
                r["shadow_draw"],
            )
        )
        for r in requests
    ]


def compiled_decisions(table: RouteTable, requests: list[dict[str, Any]]) -> list[list[Any]]:
    wire = table_wire(table)
    lines = b"".join(
        orjson.dumps({"table": wire, **{k: r[k] for k in DEFAULTS}}) + b"\n" for r in requests
    )
    done = subprocess.run(
        [str(dataplane_binary()), "decide"], input=lines, capture_output=True, check=True
    )
    return [orjson.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize(
    "executor", [python_decisions, compiled_decisions], ids=["python", "compiled"]
)
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_executor_makes_the_cases_decisions(case: dict[str, Any], executor: Any) -> None:
    requests = requests_of(case)
    expected = [r["expect"] for r in requests]
    assert executor(table_of(case), requests) == expected
