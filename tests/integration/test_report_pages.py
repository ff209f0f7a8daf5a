"""`mlpatterns report shadow|ab --html` over logs as the embedded mode writes them,
opened in headless Chromium (Debian's package): the page lays out its plots, and no
label leaves its plot or covers another (the browser's own text boxes are measured);
the same numbers come out as JSON and YAML, for the phase and window asked for."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from mlpatterns.monitoring import html
from tests.support.embedded import MLPATTERNS

pytestmark = pytest.mark.integration


SPLIT = "default a=50,b=50"


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
                "model": "1.0.0-aaaa",
                "digest": "a" * 64,
                "shadow": False,
                "output": {"labels": [label]},
                "latency_seconds": draw.uniform(1e-4, 9e-4),
            }
        )
        shadow.append(
            {
                **common,
                "version": "b",
                "model": "1.1.0-bbbb",
                "digest": "b" * 64,
                "shadow": True,
                "output": {"labels": [other]},
                "latency_seconds": draw.uniform(2e-4, 2e-3),
            }
        )
        version = "a" if i % 2 else "b"
        decisions.append(
            {
                "request_id": f"r{i}",
                "version": version,
                "phase": SPLIT,
                "timestamp": "2026-11-29T10:00:00+00:00",
            }
        )
        feedback.append({"request_id": f"r{i}", "outcome": draw.random() < (0.5 if i % 2 else 0.7)})
    for i in range(40):  # an earlier phase, which the report leaves out unless asked
        decisions.append(
            {
                "request_id": f"early{i}",
                "version": "a",
                "phase": "default a=100",
                "timestamp": "2026-11-29T09:00:00+00:00",
            }
        )
        feedback.append({"request_id": f"early{i}", "outcome": False})
    write_lines(logs / "predictions" / "iris" / "a.jsonl", primary)
    write_lines(logs / "predictions" / "iris" / "b.jsonl", shadow)
    write_lines(logs / "decisions" / "iris" / "gateway.jsonl", decisions)
    write_lines(logs / "feedback" / "iris" / "gateway.jsonl", feedback)
    with (logs / "decisions" / "iris" / "gateway.jsonl").open("ab") as torn:
        torn.write(b'{"request_id": "half')  # a line still being written is skipped


def laid_out(page: Path, profile: Path) -> tuple[int, int]:
    """How many plots Chromium drew on `page`, and how many of their labels leave the
    plot or overlap another."""
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
    found = re.search(r'data-plots-rendered="(\d+)" data-text-overflows="(\d+)"', result.stdout)
    assert found, result.stdout[:2000]
    return int(found.group(1)), int(found.group(2))


def test_reports_render_their_plots_in_chromium(tmp_path: Path) -> None:
    fill_logs(tmp_path)
    env = {**os.environ, "MLPATTERNS_HOME": str(tmp_path), "COLUMNS": "200"}
    pages = {"shadow": tmp_path / "shadow.html", "ab": tmp_path / "ab.html"}
    for kind, page in pages.items():
        result = report(env, kind, "iris", "--html", str(page))
        assert result.returncode == 0, result.stdout + result.stderr
    shadow_text = report(env, "shadow", "iris").stdout
    assert "agreement" in shadow_text
    assert "300 requests" in shadow_text
    ab_text = report(env, "ab", "iris", "--control", "a").stdout
    assert "roll out b" in ab_text  # 70% against 50% over 150 outcomes each
    assert f"phase: {SPLIT}" in ab_text
    assert laid_out(pages["shadow"], tmp_path / "profile") == (2, 0)  # confusion, latency
    assert laid_out(pages["ab"], tmp_path / "profile") == (1, 0)  # rates with intervals
    page = pages["ab"].read_text()
    assert SPLIT in page
    assert "a" * 64 in page
    assert "b" * 64 in page
    assert "2026-11-29T10:00:00+00:00 to 2026-11-29T10:00:00+00:00" in page


def test_the_layout_check_finds_a_label_outside_its_plot(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><body>"
        '<svg class="plot" width="100" height="50" style="overflow:visible">'
        '<path d="M0 0L10 10"/><g id="text_1"><path d="M90 10L160 20"/></g></svg>'
        + html.CHECK_LAYOUT
        + "</body></html>"
    )
    assert laid_out(page, tmp_path / "profile") == (1, 1)


def report(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLPATTERNS, "report", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def report_data(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = report(env, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = (yaml.safe_load if "yaml" in args else json.loads)(result.stdout)
    return data


def test_reports_as_data_count_the_phase_and_window_asked_for(tmp_path: Path) -> None:
    fill_logs(tmp_path)
    env = {**os.environ, "MLPATTERNS_HOME": str(tmp_path)}
    latest = report_data(env, "ab", "iris", "--control", "a", "-o", "json")
    requests = {v["name"]: v["requests"] for v in latest["versions"]}
    assert requests == {"a": 150, "b": 150}
    assert latest["coverage"]["phase"] == SPLIT
    digests = {v["name"]: v["digest"] for v in latest["coverage"]["versions"]}
    assert digests == {"a": "a" * 64, "b": "b" * 64}
    everything = report_data(env, "ab", "iris", "--phase", "all", "-o", "yaml")
    assert {v["name"]: v["requests"] for v in everything["versions"]} == {"a": 190, "b": 150}
    early = report_data(
        env, "ab", "iris", "--phase", "all", "--until", "2026-11-29T09:30", "-o", "json"
    )
    assert {v["name"]: v["requests"] for v in early["versions"]} == {"a": 40}
    again = report_data(env, "ab", "iris", "--control", "a", "-o", "json")
    assert again == latest  # the same command over the same logs: the same numbers
    shadow = report_data(env, "shadow", "iris", "-o", "json")
    assert shadow["pairs"] == 300
    assert shadow["coverage"]["phase"] == "shadow b beside a"
    refused = report(env, "ab", "iris", "--phase", "nosuch")
    assert refused.returncode == 2
    assert "default a=100" in refused.stdout + refused.stderr


def test_reports_without_logs_say_so(tmp_path: Path) -> None:
    env = {**os.environ, "MLPATTERNS_HOME": str(tmp_path), "COLUMNS": "200"}
    result = report(env, "shadow", "nothing")
    assert result.returncode == 1
    assert "no prediction records for nothing" in result.stdout
