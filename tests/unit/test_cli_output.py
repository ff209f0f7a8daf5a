"""The CLI's output for programs (-o json|yaml), the row count behind batch predict's
ETA, and the kubectl plugin's global flags."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlpatterns.cli.kubectl_plugin import Kubectl, hoisted
from mlpatterns.cli.main import app
from mlpatterns.cli.output import Output, emit, plain
from mlpatterns.serving.batch.size import count_rows

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Cell:
    at: datetime
    cells: dict[tuple[str, str], int]


def test_plain_turns_records_into_json_types() -> None:
    value = Cell(datetime(2026, 12, 6, tzinfo=UTC), {("a", "b"): 3})
    assert plain([value, (1, 2)]) == [
        {"at": "2026-12-06T00:00:00+00:00", "cells": {"a/b": 3}},
        [1, 2],
    ]


def test_emit_prints_json_or_yaml_and_leaves_tables_to_the_caller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert not emit({"a": 1}, Output.TABLE)
    assert capsys.readouterr().out == ""
    assert emit({"a": [1, "ü"]}, Output.JSON)
    assert json.loads(capsys.readouterr().out) == {"a": [1, "ü"]}
    assert emit({"a": [1, "ü"]}, Output.YAML)
    assert yaml.safe_load(capsys.readouterr().out) == {"a": [1, "ü"]}


def test_info_as_json_masks_secrets(tmp_path: Path) -> None:
    env = {"MLPATTERNS_HOME": str(tmp_path), "MLPATTERNS_S3_SECRET_KEY": "hunter2"}
    result = CliRunner().invoke(app, ["info", "-o", "json"], env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["settings"]["MLPATTERNS_S3_SECRET_KEY"] == "********"
    assert "hunter2" not in result.output


def test_an_unknown_output_format_is_refused() -> None:
    result = CliRunner().invoke(app, ["info", "-o", "xml"], terminal_width=200)
    assert result.exit_code == 2
    assert "table" in result.output
    assert "yaml" in result.output


def test_count_rows_reads_each_input_cheaply(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("id,x\n1,2\n3,4\n5,6")  # no newline after the last row
    assert count_rows(str(csv)) == 3
    database = tmp_path / "data.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE rows (id TEXT, x REAL)")
        db.executemany("INSERT INTO rows VALUES (?, ?)", [(str(i), i) for i in range(7)])
    assert count_rows(f"{database}:rows") == 7
    assert count_rows(f"{database}:nosuch") is None
    assert count_rows(str(tmp_path / "missing.csv")) is None


def test_kubectl_global_flags_are_read_anywhere_and_handed_on() -> None:
    argv = ["traffic", "iris", "-n", "ml", "--split", "a=100", "--context=prod", "--dry-run"]
    assert hoisted(argv) == [
        "-n",
        "ml",
        "--context=prod",
        "traffic",
        "iris",
        "--split",
        "a=100",
        "--dry-run",
    ]
    assert Kubectl(kubeconfig="/a", context="prod", namespace="ml").flags() == [
        "--kubeconfig=/a",
        "--context=prod",
        "--namespace=ml",
    ]
    assert Kubectl().flags() == []
