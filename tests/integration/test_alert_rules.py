"""The platform's alert rules under `promtool` (Debian's prometheus package, which
hack/system-deps installs): they parse, every rule has a test that makes it fire and
one that keeps it quiet, the tests pass, and they fail when a threshold is wrong."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "mlpatterns" / "files" / "alert-rules.yaml"
TESTS = REPO / "tests" / "prometheus" / "alert-rules.test.yaml"


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: hack/system-deps installs Debian's prometheus package"
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_every_rule_is_tested_firing_and_quiet() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    checks = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    firing = {c["alertname"] for c in checks if c["exp_alerts"]}
    quiet = {c["alertname"] for c in checks if not c["exp_alerts"]}
    assert alerts == firing
    assert alerts == quiet


def test_rules_parse_and_pass_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    rules = tmp_path / "charts" / "mlpatterns" / "files" / "alert-rules.yaml"
    rules.parent.mkdir(parents=True)
    rules.write_text(
        RULES.read_text().replace("mlpatterns_feature_psi > 0.25", "mlpatterns_feature_psi > 0.9")
    )
    tests = tmp_path / "tests" / "prometheus" / "alert-rules.test.yaml"
    tests.parent.mkdir(parents=True)
    tests.write_text(TESTS.read_text())
    tested = promtool("test", "rules", str(tests), cwd=tmp_path)
    assert tested.returncode != 0
    assert "MlpatternsFeatureDrift" in tested.stdout + tested.stderr
