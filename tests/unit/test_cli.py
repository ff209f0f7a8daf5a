from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mlpatterns import __version__
from mlpatterns.cli.main import PLANNED, app
from mlpatterns.cli.planned import NOT_BUILT_EXIT_CODE, PlannedCommand

pytestmark = pytest.mark.unit

GROUPS = (
    "train",
    "models",
    "datasets",
    "pipeline",
    "serve",
    "up",
    "traffic",
    "report",
    "render",
    "operator",
    "lint",
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"mlpatterns {__version__}"


def test_help_lists_every_command_group(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for group in (*GROUPS, "quickstart"):
        assert f" {group} " in result.output, group


@pytest.mark.parametrize("planned", PLANNED, ids=lambda p: p.name)
def test_planned_command_says_it_is_not_built(runner: CliRunner, planned: PlannedCommand) -> None:
    result = runner.invoke(app, [planned.name, "anything", "--flag"])
    assert result.exit_code == NOT_BUILT_EXIT_CODE
    assert "not built yet" in result.output
    assert "nothing was done" in result.output


def test_each_planned_group_has_its_own_help(runner: CliRunner) -> None:
    for planned in PLANNED:
        result = runner.invoke(app, [planned.name, "--help"], terminal_width=200)
        assert result.exit_code == 0
        assert planned.summary in result.output
