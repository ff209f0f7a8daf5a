"""The `mlpatterns` command: one Typer app, one sub-command per platform room.

Commands register themselves here explicitly, so this file is the index of the CLI.
A command whose role's extra is not installed still shows in `--help`; running it
says which extra to install and exits 2.
"""

from __future__ import annotations

import importlib.util
import os

import typer
from rich.console import Console

from mlpatterns import __version__
from mlpatterns.cli import completion, quickstart
from mlpatterns.cli import lint as lint_cli
from mlpatterns.cli import loadtest as loadtest_cli
from mlpatterns.cli import render as render_cli
from mlpatterns.cli.missing_extra import add_missing_extra
from mlpatterns.cli.registry import datasets_app, models_app, promote, storage_app
from mlpatterns.logsetup import configure_logging, level_from

__all__ = ["app", "console", "main", "root"]

app = typer.Typer(
    name="mlpatterns",
    help="mlpatterns: ML system design patterns as a Kubernetes-native platform.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console()


def _add_training_commands() -> None:
    # training needs the `training` extra; without it these commands say so
    try:
        from mlpatterns.cli import pipeline, training
    except ImportError as missing:
        for name in ("train", "search", "pipeline"):
            add_missing_extra(app, name, "training", missing)
        return
    app.command("train")(training.train)
    app.command("search")(training.search)
    app.add_typer(pipeline.pipeline_app, name="pipeline")


def _add_operator_commands() -> None:
    # the operator needs the `operator` extra; without it the command says so
    missing = [m for m in ("kopf", "kubernetes") if importlib.util.find_spec(m) is None]
    if missing:  # found, not imported: kopf's import is slow and --help must not be
        add_missing_extra(app, "operator", "operator", ImportError(f"no module {missing[0]}"))
        return
    from mlpatterns.cli.operator import operator_app

    app.add_typer(operator_app, name="operator")


def _add_serving_commands() -> None:
    # serving needs the `serving` extra; without it these commands say so
    try:
        from mlpatterns.cli import batch, embedded, serving
    except ImportError as missing:
        for name in (
            "serve",
            "batch",
            "fetch-model",
            "build-context",
            "up",
            "traffic",
            "report",
            "monitor",
            "rollout",
        ):
            add_missing_extra(app, name, "serving", missing)
        return
    from mlpatterns.cli.monitor import monitor
    from mlpatterns.cli.report import report_app
    from mlpatterns.cli.rollout import rollout_app

    app.command("up")(embedded.up)
    app.add_typer(report_app, name="report")
    app.command("monitor")(monitor)
    app.add_typer(embedded.traffic_app, name="traffic")
    app.add_typer(rollout_app, name="rollout")
    app.add_typer(serving.serve_app, name="serve")
    app.add_typer(batch.batch_app, name="batch")
    app.command("fetch-model")(serving.fetch_model)
    app.command("build-context")(serving.build_context)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"mlpatterns {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_show_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """mlpatterns: ML system design patterns as a Kubernetes-native platform."""
    try:
        configure_logging(level_from(os.environ))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="MLPATTERNS_LOG_LEVEL") from None


app.command("quickstart")(quickstart.run)
app.command("completion")(completion.completion)
app.command("info")(quickstart.info)
app.add_typer(models_app, name="models")
app.command("promote")(promote)
app.add_typer(datasets_app, name="datasets")
app.add_typer(storage_app, name="storage")
app.command("render")(render_cli.render)
app.command("loadtest")(loadtest_cli.loadtest)
app.command("lint")(lint_cli.lint)
_add_training_commands()
_add_serving_commands()
_add_operator_commands()


def main() -> None:
    completion.enable("mlpatterns")
    app()
