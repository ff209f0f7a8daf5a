"""`mlpatterns lint` with a real registry: the served models' measured latency against
the service's limits (online-bigsize) and their lineage (only-me)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlpatterns.registry.metadata import ModelDraft
from mlpatterns.registry.registry import Registry
from mlpatterns.registry.store import LocalStore
from tests.integration.test_model_server import MLPATTERNS

pytestmark = pytest.mark.integration

HEADER = """\
apiVersion: mlpatterns.io/v1alpha1
kind: ModelService
metadata:
  name: iris
  annotations: {mlpatterns.io/owner: iris-team, mlpatterns.io/description: Iris species.}
spec:
  versions:
    - name: v1
      model: {uri: "models:/%s"}
"""
LOAD_TEST = """\
  loadTest:
    rate: 10
    body: {instances: [[5.1, 3.5, 1.4, 0.2]]}
    thresholds: {p99Ms: %s}
"""


@pytest.fixture
def home(trained: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the trained registry, with iris-private: the same model registered
    with no record of its code or pipeline run."""
    folder = tmp_path / "home"
    shutil.copytree(trained[0], folder)
    registry = Registry(LocalStore(folder / "registry"))
    metadata = registry.model("iris", trained[1])
    fields = metadata.model_dump(include=set(ModelDraft.model_fields))
    private = ModelDraft.model_validate(
        {**fields, "name": "iris-private", "code_version": None, "pipeline_run_id": None}
    )
    files = {name: registry.read_file(metadata, name) for name in metadata.files}
    registry.register_model(private, files)
    return folder


def lint(home: Path, text: str, folder: Path) -> tuple[int, dict[str, Any]]:
    path = folder / "iris.yaml"
    path.write_text(text)
    done = subprocess.run(
        [MLPATTERNS, "lint", str(path), "--format", "json"],
        env={**os.environ, "MLPATTERNS_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def test_a_model_slower_than_the_services_limits_is_online_bigsize(
    home: Path, trained: tuple[Path, str], tmp_path: Path
) -> None:
    version = trained[1]
    measured = Registry(LocalStore(home / "registry")).model("iris", version).latency
    assert measured is not None
    assert 0 < measured.p50_ms <= measured.p99_ms

    service = HEADER % f"iris/{version}"
    too_tight = service + LOAD_TEST % (measured.p99_ms / 2)
    limit = f"      parameters: {{timeoutSeconds: {measured.p99_ms / 4000}}}\n"
    timeout = service.replace("      model:", limit + "      model:")
    roomy = service + LOAD_TEST % (measured.p99_ms * 1000)

    for text, where in ((too_tight, "p99Ms"), (timeout, "timeoutSeconds")):
        code, report = lint(home, text, tmp_path)
        assert code == 1
        [finding] = report["findings"]
        assert finding["rule"] == "online-bigsize"
        assert where in text.splitlines()[finding["line"] - 1]
        assert f"{measured.p99_ms:.2f} ms at p99" in finding["message"]
    code, report = lint(home, roomy, tmp_path)
    assert (code, report["findings"], report["notes"]) == (0, [], [])


def test_a_model_with_no_record_of_its_code_is_only_me(
    home: Path, trained: tuple[Path, str], tmp_path: Path
) -> None:
    private = Registry(LocalStore(home / "registry")).versions("iris-private")[0].version

    code, report = lint(home, HEADER % f"iris-private/{private}", tmp_path)
    clean, checked = lint(home, HEADER % f"iris/{trained[1]}", tmp_path)

    assert code == 1
    [finding] = report["findings"]
    assert finding["rule"] == "only-me"
    assert finding["line"] == 9  # the model's uri
    assert (clean, checked["findings"]) == (0, [])


def test_a_model_the_registry_does_not_have_is_a_note_not_a_pass_or_a_failure(
    home: Path, tmp_path: Path
) -> None:
    code, report = lint(home, HEADER % "iris@nowhere", tmp_path)
    assert code == 0
    [note] = report["notes"]
    assert "models:/iris@nowhere" in note
    assert "left out" in note
