"""`mlpatterns report shadow|ab --html` over logs as the embedded mode writes them,
opened in headless Chromium (Debian's package): the page lays out its plots."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.support.embedded import MLPATTERNS

pytestmark = pytest.mark.integration


def write_lines(path: Path, records: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def fill_logs(home: Path) -> None:
    draw = random.Random(3)
    logs = home / "logs"
    primary, shadow, decisions, feedback = [], [], [], []
    for i in range(300):
        label = draw.choice(["setosa", "versicolor", "virginica"])
        other = label if draw.random() < 0.9 else "virginica"
        common = {"request_id": f"r{i}", "service": "iris", "input": [[5.1, 3.5, 1.4, 0.2]]}
        primary.append(
            {
                **common,
                "version": "a",
                "shadow": False,
                "output": {"labels": [label]},
                "latency_seconds": draw.uniform(1e-4, 9e-4),
            }
        )
        shadow.append(
            {
                **common,
                "version": "b",
                "shadow": True,
                "output": {"labels": [other]},
                "latency_seconds": draw.uniform(2e-4, 2e-3),
            }
        )
        version = "a" if i % 2 else "b"
        decisions.append(
            {"request_id": f"r{i}", "version": version, "timestamp": "2026-11-29T10:00:00+00:00"}
        )
        feedback.append({"request_id": f"r{i}", "outcome": draw.random() < (0.5 if i % 2 else 0.7)})
    write_lines(logs / "predictions" / "iris" / "a.jsonl", primary)
    write_lines(logs / "predictions" / "iris" / "b.jsonl", shadow)
    write_lines(logs / "decisions" / "iris" / "gateway.jsonl", decisions)
    write_lines(logs / "feedback" / "iris" / "gateway.jsonl", feedback)
    with (logs / "decisions" / "iris" / "gateway.jsonl").open("ab") as torn:
        torn.write(b'{"request_id": "half')  # a line still being written is skipped


def rendered_plots(page: Path, profile: Path) -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: hack/system-deps installs it"
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = re.search(r'data-plots-rendered="(\d+)"', result.stdout)
    assert found, result.stdout[:2000]
    return int(found.group(1))


def test_reports_render_their_plots_in_chromium(tmp_path: Path) -> None:
    fill_logs(tmp_path)
    env = {**os.environ, "MLPATTERNS_HOME": str(tmp_path), "COLUMNS": "200"}
    pages = {"shadow": tmp_path / "shadow.html", "ab": tmp_path / "ab.html"}
    for kind, page in pages.items():
        result = subprocess.run(
            [MLPATTERNS, "report", kind, "iris", "--html", str(page)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    shadow_text = subprocess.run(
        [MLPATTERNS, "report", "shadow", "iris"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "agreement" in shadow_text
    assert "300 requests" in shadow_text
    ab_text = subprocess.run(
        [MLPATTERNS, "report", "ab", "iris", "--control", "a"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "roll out b" in ab_text  # 70% against 50% over 150 outcomes each
    assert rendered_plots(pages["shadow"], tmp_path / "profile") == 2  # confusion, latency
    assert rendered_plots(pages["ab"], tmp_path / "profile") == 1  # rates with intervals


def test_reports_without_logs_say_so(tmp_path: Path) -> None:
    env = {**os.environ, "MLPATTERNS_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run(
        [MLPATTERNS, "report", "shadow", "nothing"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "no prediction records for nothing" in result.stdout
