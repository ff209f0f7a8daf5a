"""The README's first command, minus the environment set-up: `mlpatterns quickstart`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_report_pages import laid_out
from tests.support.processes import free_port

pytestmark = pytest.mark.integration
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))


def test_quickstart_trains_serves_tests_and_reports(tmp_path: Path) -> None:
    env = {**os.environ, "MLPATTERNS_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run(
        [MLPATTERNS, "quickstart", "--port", str(free_port()), "--requests", "200"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Done: created the state folder" in out
    assert "Shadow report: iris-quickstart" in out
    assert "agreement" in out
    assert "users who saw more than one version: 0" in out
    assert "Online A/B report: iris-quickstart" in out
    assert "recommendation:" in out
    assert "rollout iris-rollout: Advanced: step 4 of 4: weight 100" in out
    assert "iris-rollout: Succeeded, step 4 of 4" in out
    assert "AliasMoved: iris@production now names" in out
    folder = tmp_path / "quickstart"
    for name in (
        "iris-modelservice.yaml",
        "shadow-report.html",
        "ab-report.html",
        "iris-rollout.yaml",
    ):
        assert (folder / name).is_file()
        assert str(folder / name) in out
    assert "<svg" in (folder / "ab-report.html").read_text()
    assert not (tmp_path / "run" / "iris-quickstart.json").exists()  # everything stopped
    listed = subprocess.run(
        [MLPATTERNS, "models", "ls", "iris", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    models = json.loads(listed.stdout)
    assert [m["model_type"] for m in models] == ["logreg", "random_forest", "gradient_boosting"]
    assert (tmp_path / "registry" / "models" / "iris").is_dir()

    # what the tour's A/B page counted, `report ab` counts on the same logs
    env80 = {**env, "COLUMNS": "80"}
    data = json.loads(cli(env, "report", "ab", "iris-quickstart", "-o", "json"))
    page = (folder / "ab-report.html").read_text()
    for version in data["versions"]:
        assert f"<td>{version['name']}</td><td>{version['requests']}</td>" in page
    assert data["coverage"]["phase"] in page
    # the served models' live inputs against their training profiles
    watched = json.loads(cli(env, "monitor", "iris-quickstart", "-o", "json"))
    assert {v["version"] for v in watched["versions"]} == {"current", "challenger"}
    for version in watched["versions"]:
        assert len(version["features"]) == 4
        assert len(version["digest"]) == 64
        assert version["class_psi"] is not None
    page = tmp_path / "monitor.html"
    cli(env, "monitor", "iris-quickstart", "--html", str(page))
    assert laid_out(page, tmp_path / "profile") == (4, 0)  # features and class mix, twice
    # tables stay readable in an 80-column log
    for command in (
        ("monitor", "iris-quickstart"),
        ("models", "ls"),
        ("datasets", "ls"),
        ("report", "ab", "iris-quickstart"),
        ("report", "shadow", "iris-quickstart"),
        ("info",),
    ):
        shown = cli(env80, *command)
        assert max(len(line) for line in shown.splitlines()) <= 80, shown
        assert "\u2026" not in shown, shown  # no cell cut short with an ellipsis


def cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [MLPATTERNS, *args], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
