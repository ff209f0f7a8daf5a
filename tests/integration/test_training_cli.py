"""The training patterns as a user runs them: the `mlpatterns` command in a subprocess,
kfp's local runner, the registry in a fresh MLPATTERNS_HOME."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.fake_kfp import fake_kfp_server

pytestmark = pytest.mark.integration
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))


def mlpatterns(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLPATTERNS, *args],
        env={**os.environ, "MLPATTERNS_HOME": str(home), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def latest_log(home: Path) -> str:
    logs = sorted((home / "kfp" / "logs").glob("*.log"), key=lambda p: p.stat().st_mtime)
    return re.sub(r"\x1b\[[0-9;]*m", "", logs[-1].read_text())  # without colours


def test_train_registers_and_a_rerun_reuses_finished_steps(tmp_path: Path) -> None:
    first = mlpatterns(tmp_path, "train", "iris", "--gate", "accuracy>=0.9")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "registered models:/iris/0.1.0-" in first.stdout
    version = first.stdout.split("models:/iris/")[1].split()[0]

    shown = mlpatterns(tmp_path, "models", "show", f"models:/iris/{version}", "-o", "json")
    meta = json.loads(shown.stdout)
    assert meta["version"] == version
    assert meta["pipeline_run_id"].startswith("batch-training-")
    assert meta["metrics"]["accuracy"] >= 0.9

    again = mlpatterns(tmp_path, "train", "iris", "--gate", "accuracy>=0.9")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"models:/iris/{version}" in again.stdout  # the same version, not a new one
    log = latest_log(tmp_path)
    for task in ("load", "validate", "split", "train", "export"):  # finished steps reused
        assert f"Task {task} cache hit" in log, task
        assert f"Executing task '{task}'" not in log, task

    listed = json.loads(mlpatterns(tmp_path, "models", "ls", "-o", "json").stdout)
    assert [(m["name"], m["version"], m["aliases"]) for m in listed] == [
        ("iris", version, ["candidate"])
    ]
    datasets = json.loads(mlpatterns(tmp_path, "datasets", "ls", "-o", "json").stdout)
    assert [(d["name"], d["rows"]) for d in datasets] == [("iris", 150)]


def test_invalid_data_is_rejected_with_a_report(tmp_path: Path) -> None:
    data = tmp_path / "flowers.csv"
    data.write_text(
        "sepal_length,sepal_width,label\n5.1,3.5,setosa\nabc,3.0,setosa\n-1,3.0,setosa\n5,3,tulip\n"
    )
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        yaml.safe_dump(
            {
                "label": "label",
                "classes": ["setosa", "versicolor"],
                "features": [
                    {"name": "sepal_length", "minimum": 0},
                    {"name": "sepal_width", "minimum": 0},
                ],
            }
        )
    )
    result = mlpatterns(tmp_path / "home", "train", str(data), "--schema", str(schema))
    assert result.returncode == 1
    assert "failed in task 'validate'" in result.stdout
    assert "3 of 4 rows rejected" in result.stdout
    assert "line 3: sepal_length='abc' is not a number" in result.stdout
    assert "line 4: sepal_length=-1 is below the minimum 0" in result.stdout
    assert "line 5: label='tulip' is not one of ['setosa', 'versicolor']" in result.stdout


def test_search_with_a_failing_trial_registers_the_best_of_the_others(tmp_path: Path) -> None:
    space = json.dumps({"C": [0.01, -1.0, 1.0]})  # C=-1 is rejected by scikit-learn
    result = mlpatterns(
        tmp_path, "search", "iris", "--space", space, "--trials", "3", "--parallel", "2"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed: InvalidParameterError" in result.stdout
    assert "registered models:/iris/" in result.stdout
    version = result.stdout.split("models:/iris/")[1].split()[0]
    meta = json.loads(
        mlpatterns(tmp_path, "models", "show", f"models:/iris/{version}", "-o", "json").stdout
    )
    assert meta["parameters"] == {"C": 1.0}  # 1.0 beats 0.01 on iris; -1.0 failed


def test_compiled_pipelines_match_the_code(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLPATTERNS_TRAINING_IMAGE"}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.compile", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    committed = Path(__file__).resolve().parents[2] / "pipelines" / "compiled"
    for fresh in sorted(tmp_path.glob("*.yaml")):
        assert fresh.read_text() == (committed / fresh.name).read_text(), (
            f"{fresh.name} differs from pipelines/compiled: run `mlpatterns pipeline compile`"
        )
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == sorted(
        p.name for p in committed.glob("*.yaml")
    )


def test_submit_and_schedule_go_to_the_kfp_api(tmp_path: Path) -> None:
    with fake_kfp_server() as kfp:
        submitted = mlpatterns(
            tmp_path,
            "pipeline",
            "submit",
            "batch_training",
            "--host",
            kfp.url,
            "--param",
            "dataset=digits",
            "--param",
            "gate=accuracy>=0.9",
            MLPATTERNS_KFP_TOKEN="secret-token-value",
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        assert "submitted run run-1" in submitted.stdout
        [run] = kfp.posted("/apis/v2beta1/runs")
        # with a platform spec (the registry's Secret), kfp sends both, side by side
        sent = run["pipeline_spec"]
        assert sent["pipeline_spec"]["pipelineInfo"]["name"] == "batch-training"
        executors = sent["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        assert executors["exec-register"]["secretAsEnv"][0]["secretName"] == (
            "mlpatterns-storage-training"
        )
        assert run["runtime_config"]["parameters"] == {"dataset": "digits", "gate": "accuracy>=0.9"}
        assert run["experiment_id"] == "exp-1"
        authorized = [r for r in kfp.requests if r.path == "/apis/v2beta1/runs"]
        assert authorized[0].headers["authorization"] == "Bearer secret-token-value"
        assert "secret-token-value" not in submitted.stdout + submitted.stderr

        scheduled = mlpatterns(
            tmp_path,
            "pipeline",
            "schedule",
            "batch_training",
            "--host",
            kfp.url,
            "--cron",
            "0 0 3 * * *",
            "--param",
            "dataset=iris",
        )
        assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
        [recurring] = kfp.posted("/apis/v2beta1/recurringruns")
        assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
        assert recurring["max_concurrency"] == "1" or recurring["max_concurrency"] == 1
        assert recurring["no_catchup"] is True
        assert recurring["runtime_config"]["parameters"] == {"dataset": "iris"}

    bad = mlpatterns(
        tmp_path,
        "pipeline",
        "schedule",
        "batch_training",
        "--host",
        "http://127.0.0.1:9",
        "--cron",
        "0 3 * * *",
    )
    assert bad.returncode == 2
    assert "six fields" in bad.stdout + bad.stderr
