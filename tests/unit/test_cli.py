from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from mlpatterns import __version__
from mlpatterns.cli.main import app

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


def flat(output: str) -> str:
    """The output as one line: rich's boxes and wrapping taken out."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


SPACE = '{"C": [1]}'


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["train", "iris", "--model", "xgboost"], "no model type 'xgboost'; choose one of logreg"),
        (["train", "iris", "--gate", "acc>=0.9"], "no metric 'acc'; gates can name accuracy"),
        (["report", "ab", "iris", "--since", "yesterday"], "'yesterday' is not a time"),
        (["report", "ab", "iris", "--until", "tomorrow"], "'tomorrow' is not a time"),
        (["search", "iris", "--space", SPACE, "--metric", "auc"], "trials are scored by accuracy"),
        (["search", "iris", "--space", SPACE, "--gate", "acc>0.3"], "no metric 'acc'"),
        (["search", "iris", "--space", SPACE, "--model", "xgb"], "no model type 'xgb'"),
        (["search", "iris", "--space", '{"model_type": ["xgb"]}'], "no model type 'xgb'"),
        (["search", "iris", "--space", SPACE, "--target", "high"], "'high' is not a number"),
        (["info", "-o", "xml"], "'xml' is not one of"),
        (["completion", "tcsh"], "'tcsh' is not one of"),
    ],
)
def test_mistakes_are_refused_before_any_work(
    runner: CliRunner, arguments: list[str], message: str
) -> None:
    result = runner.invoke(app, arguments, terminal_width=400)
    assert result.exit_code == 2
    assert message in flat(result.output)


def test_an_unknown_control_version_is_refused(
    runner: CliRunner, tmp_path: pytest.TempPathFactory
) -> None:
    log = tmp_path / "logs" / "decisions" / "iris" / "gateway.jsonl"  # type: ignore[operator]
    log.parent.mkdir(parents=True)
    log.write_text(
        '{"request_id": "r1", "version": "current", "timestamp": "2026-12-01T10:00:00"}\n'
        '{"request_id": "r2", "version": "candidate", "timestamp": "2026-12-01T10:00:01"}\n'
    )
    result = runner.invoke(
        app,
        ["report", "ab", "iris", "--control", "nosuch"],
        env={"MLPATTERNS_HOME": str(tmp_path)},
        terminal_width=400,
    )
    assert result.exit_code == 2
    assert "choose one of candidate, current" in flat(result.output)


def test_the_missing_extra_hint_keeps_its_brackets(runner: CliRunner) -> None:
    import typer

    from mlpatterns.cli.missing_extra import add_missing_extra

    lonely = typer.Typer()
    add_missing_extra(lonely, "operator", "operator", ImportError("No module named 'kopf'"))
    lonely.command("other")(lambda: None)
    result = runner.invoke(lonely, ["operator"], terminal_width=400)
    assert "pip install 'mlpatterns[operator]'" in flat(result.output)


def test_registry_errors_read_as_sentences(runner: CliRunner, tmp_path: object) -> None:
    result = runner.invoke(
        app, ["models", "show", "models:/nosuch@production"], env={"MLPATTERNS_HOME": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert flat(result.output) == "model nosuch has no alias production"  # no KeyError quotes
