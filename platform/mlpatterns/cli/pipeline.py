"""`mlpatterns pipeline`: compile the training pipelines, submit runs and schedules to KFP."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from mlpatterns.cli.training import parse_params
from mlpatterns.settings import load_settings

__all__ = [
    "EXPERIMENT",
    "HOST",
    "PARAM",
    "PIPELINE_NAMES",
    "compile_pipelines",
    "console",
    "manifests",
    "pipeline_app",
    "schedule",
    "submit",
]

console = Console()
pipeline_app = typer.Typer(
    help="Compile, submit and schedule kfp training pipelines.", no_args_is_help=True
)
PIPELINE_NAMES = ("batch_training", "parameter_search", "training_to_serving")
# KFP's scheduler takes six cron fields, seconds first: "0 0 3 * * *" is 03:00 daily.
_CRON = re.compile(r"^\s*(\S+\s+){5}\S+\s*$")

HOST = typer.Option(None, help="KFP API endpoint (default: MLPATTERNS_KFP_ENDPOINT).")
PARAM = typer.Option(None, "--param", help="Pipeline argument key=value; repeatable.")
EXPERIMENT = typer.Option("mlpatterns", help="Experiment to file the run under.")


def _check_pipeline(name: str) -> str:
    if name not in PIPELINE_NAMES:
        raise typer.BadParameter(f"unknown pipeline {name!r}; choose {', '.join(PIPELINE_NAMES)}")
    return name


def _arguments(params: list[str] | None) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for item in params or []:
        arguments.update(parse_params(item))
    return arguments


def _client(host: str | None) -> Any:
    import kfp

    settings = load_settings()
    endpoint = host or settings.kfp_endpoint
    if not endpoint:
        raise typer.BadParameter("give --host or set MLPATTERNS_KFP_ENDPOINT", param_hint="--host")
    token = settings.kfp_token.get_secret_value() if settings.kfp_token else None
    return kfp.Client(host=endpoint, existing_token=token)


def _compiled(name: str, folder: Path) -> Path:
    from kfp import compiler

    from pipelines.compile import PIPELINES

    path = folder / f"{name}.yaml"
    compiler.Compiler().compile(PIPELINES[name], str(path))
    return path


@pipeline_app.command("compile")
def compile_pipelines(
    out: Path = typer.Option(Path("pipelines/compiled"), help="Folder for the IR YAML files."),
) -> None:
    """Compile every training pipeline to kfp IR YAML."""
    from pipelines.compile import compile_all

    for path in compile_all(out):
        console.print(f"wrote {path}")


@pipeline_app.command("submit")
def submit(
    pipeline: str = typer.Argument(..., help="batch_training or parameter_search"),
    host: str | None = HOST,
    param: list[str] | None = PARAM,
    experiment: str = EXPERIMENT,
    run_name: str = typer.Option("", help="Run name (default: KFP's)."),
) -> None:
    """Submit one run of a training pipeline to a Kubeflow Pipelines endpoint."""
    client = _client(host)
    with tempfile.TemporaryDirectory() as folder:
        result = client.create_run_from_pipeline_package(
            str(_compiled(_check_pipeline(pipeline), Path(folder))),
            arguments=_arguments(param),
            run_name=run_name or None,
            experiment_name=experiment,
        )
    console.print(f"submitted run {result.run_id}")


@pipeline_app.command("schedule")
def schedule(
    pipeline: str = typer.Argument(..., help="batch_training or parameter_search"),
    cron: str = typer.Option(..., help='Six cron fields, seconds first, e.g. "0 0 3 * * *".'),
    host: str | None = HOST,
    param: list[str] | None = PARAM,
    experiment: str = EXPERIMENT,
    name: str = typer.Option("", help="Recurring run name (default: <pipeline>-schedule)."),
    max_concurrency: int = typer.Option(1, min=1, help="Runs of this schedule at once."),
) -> None:
    """Create a recurring run: batch training on a schedule, with no person in the loop."""
    if not _CRON.match(cron):
        raise typer.BadParameter(
            "KFP cron has six fields, seconds first, e.g. '0 0 3 * * *' (03:00 daily)",
            param_hint="--cron",
        )
    client = _client(host)
    experiment_id = client.create_experiment(name=experiment).experiment_id
    with tempfile.TemporaryDirectory() as folder:
        recurring = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name or f"{_check_pipeline(pipeline)}-schedule",
            cron_expression=cron,
            max_concurrency=max_concurrency,
            no_catchup=True,
            params=_arguments(param),
            pipeline_package_path=str(_compiled(pipeline, Path(folder))),
        )
    console.print(f"scheduled recurring run {recurring.recurring_run_id} ({cron})")


@pipeline_app.command("manifests")
def manifests(
    compiled: Path = typer.Option(
        Path("pipelines/compiled"), help="Folder of the compiled IR YAML files."
    ),
    out: Path = typer.Option(Path("manifests/pipelines"), help="Folder for the Kustomize base."),
    namespace: str | None = typer.Option(None, help="Namespace to set (default: none)."),
) -> None:
    """Write the pipelines as KFP Pipeline and PipelineVersion objects (a Kustomize base)."""
    from mlpatterns.cli.pipeline_files import pipeline_manifest_files

    for path, text in pipeline_manifest_files(compiled, out, namespace).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        console.print(f"wrote {path}")
