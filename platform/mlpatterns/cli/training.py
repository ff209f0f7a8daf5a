"""`mlpatterns train` and `mlpatterns search`: the training pipelines, run locally."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from mlpatterns.cli.output import new_table

__all__ = [
    "BATCH_TRAINING_TASKS",
    "batch_training_arguments",
    "console",
    "parse_params",
    "report_registration",
    "run_with_progress",
    "search",
    "train",
]

console = Console()
BATCH_TRAINING_TASKS = 7


def parse_params(text: str) -> dict[str, Any]:
    """Parameters as JSON (`{"C": 1}`) or `key=value` pairs (`C=1,kernel=rbf`)."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise typer.BadParameter("parameters must be a JSON object")
        return value
    params: dict[str, Any] = {}
    for pair in text.split(","):
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value; e.g. C=1.0,max_iter=500")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw.strip()
    return params


def run_with_progress(
    pipeline: str, arguments: dict[str, Any], total: int | None, parallel: int, cache: bool
) -> str:
    from mlpatterns.training.kfp_local import PipelineFailedError, TaskEvent, run_pipeline

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(f"{pipeline}: starting", total=total)

        def show(event: TaskEvent) -> None:
            # every finished task counts (a search runs `search-trial` once per trial)
            if event.status == "RUNNING":
                progress.update(bar, description=f"{pipeline}: {event.task}")
            elif event.status in ("SUCCESS", "CACHED"):
                progress.advance(bar)

        try:
            output = run_pipeline(
                pipeline, arguments, parallelism=parallel, caching=cache, on_event=show
            )
        except PipelineFailedError as error:
            progress.stop()
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
        progress.update(bar, description=f"{pipeline}: done", completed=total)
    return output


def report_registration(output: str, name: str) -> None:
    if output:
        console.print(f"registered [bold]models:/{name}/{output}[/bold] (alias: candidate)")
    else:
        from mlpatterns.registry.registry import Registry
        from mlpatterns.settings import load_settings

        runs = [r for r in Registry.from_settings(load_settings()).runs() if r.get("name") == name]
        reason = runs[-1]["reason"] if runs else "the gate was not met"
        console.print(f"[yellow]not registered: {reason}[/yellow]")


def train(
    dataset: str = typer.Argument(..., help="iris, breast_cancer, digits, or a .csv/.parquet file"),
    name: str = typer.Option("", help="Model name (default: the dataset's name)."),
    model: str = typer.Option("logreg", help="logreg, svc, random_forest or gradient_boosting."),
    params: str = typer.Option("", help='Parameters: JSON or key=value pairs, e.g. "C=0.5".'),
    gate: str = typer.Option("", help="Register only if met, e.g. accuracy>=0.9."),
    schema: Path | None = typer.Option(None, help="Schema file for your own dataset (YAML)."),
    max_invalid: float = typer.Option(0.05, help="Largest share of invalid rows to tolerate."),
    test_ratio: float = typer.Option(0.2, help="Share of rows held out for evaluation."),
    seed: int = typer.Option(42, help="Seed of the split and the model."),
    release: int = typer.Option(0, help="Release number X of X.Y.Z (0: pre-release)."),
    cache: bool = typer.Option(True, help="Reuse the results of finished steps."),
) -> None:
    """Run the batch_training pipeline locally and print the registered version."""
    arguments = batch_training_arguments(
        dataset,
        name=name,
        model=model,
        params=params,
        gate=gate,
        schema=schema,
        max_invalid=max_invalid,
        test_ratio=test_ratio,
        seed=seed,
        release=release,
    )
    output = run_with_progress("batch_training", arguments, BATCH_TRAINING_TASKS, 1, cache)
    report_registration(output, arguments["name"])


def batch_training_arguments(
    dataset: str,
    *,
    name: str = "",
    model: str = "logreg",
    params: str = "",
    gate: str = "",
    schema: Path | None = None,
    max_invalid: float = 0.05,
    test_ratio: float = 0.2,
    seed: int = 42,
    release: int = 0,
) -> dict[str, Any]:
    """The batch_training pipeline's arguments, checked: what `train` passes to kfp."""
    from mlpatterns.training.choices import MODEL_TYPES

    if model not in MODEL_TYPES:
        raise typer.BadParameter(
            f"no model type {model!r}; choose one of {', '.join(MODEL_TYPES)}",
            param_hint="--model",
        )
    _check_gate(gate)
    return {
        "dataset": dataset,
        "name": name or Path(dataset).stem.replace("_", "-").lower(),
        "model_type": model,
        "parameters": json.dumps(parse_params(params), sort_keys=True),
        "gate": gate,
        "schema_file": str(schema.resolve()) if schema else "",
        "max_invalid_fraction": max_invalid,
        "test_ratio": test_ratio,
        "seed": seed,
        "release": release,
    }


def _check_gate(gate: str) -> None:
    from mlpatterns.training.choices import Gate

    if gate:
        try:
            Gate.parse(gate)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--gate") from None


def search(
    dataset: str = typer.Argument(..., help="iris, breast_cancer, digits, or a .csv file"),
    space: str = typer.Option(..., help='Search space as JSON, e.g. {"C": [0.1, 1, 10]}.'),
    trials: int = typer.Option(8, min=1, help="Number of trials."),
    parallel: int = typer.Option(2, min=1, help="Trials run at once."),
    strategy: str = typer.Option("grid", help="grid or random."),
    metric: str = typer.Option("accuracy", help="accuracy, f1_macro or log_loss."),
    target: str = typer.Option("", help="Stop starting trials once one reaches this metric."),
    time_budget: float = typer.Option(
        0.0, min=0.0, help="Seconds after which no trial starts (0: none)."
    ),
    name: str = typer.Option("", help="Model name (default: the dataset's name)."),
    model: str = typer.Option("logreg", help="Model type, unless the space chooses model_type."),
    gate: str = typer.Option("", help="Register the best only if met, e.g. accuracy>=0.9."),
    schema: Path | None = typer.Option(None, help="Schema file for your own dataset (YAML)."),
    seed: int = typer.Option(42, help="Seed of the split, the sampling and the models."),
    cache: bool = typer.Option(True, help="Reuse the results of finished steps."),
) -> None:
    """Run the parameter_search pipeline locally: trials in parallel, the best registered."""
    from mlpatterns.training.choices import MODEL_TYPES, SEARCH_METRICS
    from mlpatterns.training.space import SearchSpaceError, expand

    try:
        planned = expand(json.loads(space), strategy, trials, seed)
    except (json.JSONDecodeError, SearchSpaceError) as error:
        raise typer.BadParameter(str(error), param_hint="--space") from None
    if metric not in SEARCH_METRICS:
        raise typer.BadParameter(
            f"no metric {metric!r}; trials are scored by {', '.join(SEARCH_METRICS)}",
            param_hint="--metric",
        )
    chosen = {str(trial.get("model_type", model)) for trial in planned}
    unknown = sorted(chosen - set(MODEL_TYPES))
    if unknown:
        raise typer.BadParameter(
            f"no model type {', '.join(map(repr, unknown))}; choose from {', '.join(MODEL_TYPES)}",
            param_hint="--model" if model in unknown else "--space",
        )
    if target:
        try:
            float(target)
        except ValueError:
            raise typer.BadParameter(
                f"{target!r} is not a number: the {metric} at which to stop, e.g. 0.95",
                param_hint="--target",
            ) from None
    _check_gate(gate)
    model_name = name or Path(dataset).stem.replace("_", "-").lower()
    arguments = {
        "dataset": dataset,
        "name": model_name,
        "space": space,
        "strategy": strategy,
        "trials": trials,
        "metric": metric,
        "target": target,
        "time_budget_seconds": time_budget,
        "model_type": model,
        "gate": gate,
        "schema_file": str(schema.resolve()) if schema else "",
        "seed": seed,
    }
    output = run_with_progress("parameter_search", arguments, len(planned) + 9, parallel, cache)
    _show_trials(model_name)
    report_registration(output, model_name)


def _show_trials(name: str) -> None:
    from mlpatterns.registry.registry import Registry
    from mlpatterns.settings import load_settings

    registry = Registry.from_settings(load_settings())
    summaries = [k for k in registry.store.list("searches/") if k.endswith("/summary.json")]
    if not summaries:
        return
    latest = max(
        (json.loads(registry.store.get(k).data) for k in summaries),
        key=lambda summary: summary["finished_at"],
    )
    table = new_table(title=f"trials ({latest['metric']})")
    for column in ("#", "model", "parameters", "status", latest["metric"]):
        table.add_column(column)
    for trial in latest["trials"]:
        value = f"{trial['metric']:.4f}" if trial.get("metric") is not None else ""
        status = (
            trial["status"]
            if trial["status"] == "ok"
            else f"{trial['status']}: " + str(trial.get("error") or trial.get("reason", ""))[:60]
        )
        best = " (best)" if trial["index"] == latest["best"]["index"] else ""
        table.add_row(
            str(trial["index"]),
            trial["model_type"],
            json.dumps(trial["parameters"]),
            status,
            value + best,
        )
    console.print(table)
