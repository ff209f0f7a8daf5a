from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpatterns.cli.main import app
from mlpatterns.cli.quickstart import installed_roles

pytestmark = pytest.mark.unit


def test_quickstart_creates_the_state_folder_and_says_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "state"
    monkeypatch.setenv("MLPATTERNS_HOME", str(home))
    result = CliRunner().invoke(app, ["quickstart", "--no-train"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert home.is_dir()
    assert str(home) in result.output
    assert "Done:" in result.output


def test_dev_environment_has_every_role() -> None:
    # The test environment is the `dev` extra, which must carry every role at once.
    assert installed_roles() == {
        "serving": True,
        "operator": True,
        "training": True,
        "reports": True,
    }


def test_info_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPATTERNS_S3_SECRET_KEY", "hunter2-secret")
    result = CliRunner().invoke(app, ["info"], terminal_width=200)
    assert result.exit_code == 0
    assert "hunter2-secret" not in result.output
    assert "MLPATTERNS_S3_SECRET_KEY" in result.output
