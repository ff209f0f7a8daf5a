"""`mlpatterns quickstart` and `mlpatterns info`.

The quickstart runs what the platform can do today and says plainly what it did.
Each later room adds its step here, so a newcomer always sees the current platform.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.table import Table

from mlpatterns import __version__
from mlpatterns.cli import registry as registry_cli
from mlpatterns.cli.output import OUTPUT, Output, emit, new_table
from mlpatterns.logstreams import place
from mlpatterns.settings import Settings, load_settings

__all__ = ["ROLES", "Role", "console", "info", "installed_roles", "run"]

console = Console()


@dataclass(frozen=True)
class Role:
    extra: str
    modules: tuple[str, ...]


ROLES = (
    Role(
        "serving",
        ("onnxruntime", "starlette", "uvicorn", "prometheus_client", "minio", "redis", "pyarrow"),
    ),
    Role("operator", ("kopf", "kubernetes")),
    Role("training", ("sklearn", "skl2onnx", "kfp")),
    Role("reports", ("matplotlib",)),
)


def installed_roles() -> dict[str, bool]:
    """Which role extras are installed in this environment (every module importable)."""
    return {
        role.extra: all(importlib.util.find_spec(m) is not None for m in role.modules)
        for role in ROLES
    }


def _settings_table(settings: Settings) -> Table:
    table = new_table(title="Settings (environment variables)")
    table.add_column("variable")
    table.add_column("value", overflow="fold")
    for name, value in settings.describe().items():
        table.add_row(name, "(unset)" if value is None else str(value))
    return table


def info(output: Output = OUTPUT) -> None:
    """Show the version, the settings in force and which role extras are installed."""
    settings = load_settings()
    described = {
        "version": __version__,
        "settings": settings.describe(),
        "extras": installed_roles(),
    }
    if emit(described, output):
        return
    console.print(f"mlpatterns {__version__}")
    console.print(_settings_table(settings))
    for extra, present in installed_roles().items():
        mark = "[green]installed[/green]" if present else "[dim]not installed[/dim]"
        console.print(f"  extra [bold]{extra}[/bold]: {mark}")


def run(
    train: bool = typer.Option(True, help="Train and register two iris models (about a minute)."),
    serve: bool = typer.Option(True, help="Run the shadow and A/B tour on the trained models."),
    port: int = typer.Option(8080, help="The tour's gateway port."),
    requests: int = typer.Option(500, min=50, help="Requests sent in the shadow phase."),
    rollout: bool = typer.Option(
        True, help="End with training to serving: a new candidate rolled out in steps."
    ),
) -> None:
    """Run the embedded quickstart: train, serve, shadow, A/B test, report, on this machine."""
    settings = load_settings()
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    console.rule(f"mlpatterns {__version__} quickstart")
    console.print(f"State folder (MLPATTERNS_HOME): [bold]{home}[/bold]")
    roles = installed_roles()
    for extra, present in roles.items():
        console.print(f"  extra {extra}: {'installed' if present else 'not installed'}")
    done = ["created the state folder", "checked the installed roles"]
    if train and roles["training"]:
        _train_two_models()
        done.append(
            "trained two iris models through the batch_training pipeline and registered them "
            "(iris@production, iris@candidate)"
        )
    files: list[str] = []
    if serve and roles["serving"] and roles["training"] and _has_both_aliases():
        from mlpatterns.cli import tour

        where = place(settings)
        files = [
            str(p) for p in tour.run_tour(console, home, where, port, requests, roles["reports"])
        ]
        done.append(
            "served them as a ModelService with a shadow, then a 90/10 sticky A/B test with "
            "feedback, and reported on both"
        )
        if rollout:
            from mlpatterns.cli import tour_rollout

            files.append(str(tour_rollout.run_rollout(console, home, port)))
            done.append(
                "trained a third model through the training_to_serving pipeline and rolled it "
                "out step by step under traffic (spec.rollout)"
            )
        done.append("everything is stopped again")
    elif serve:
        done.append("skipped the serving tour (it needs the two trained models: run with --train)")
    console.print(f"Done: {'; '.join(done)}.")
    registry = (
        f"bucket {settings.s3_bucket} at {settings.s3_endpoint}"
        if settings.uses_object_storage
        else str(home / "registry")
    )
    console.print(
        f"Files: the registry is in {registry}, kfp outputs in {home / 'kfp'}, "
        f"logs in {place(settings).describe()}."
    )
    for path in files:
        console.print(f"  wrote {path}")


def _has_both_aliases() -> bool:
    from mlpatterns.registry.registry import Registry

    aliases = Registry.from_settings(load_settings()).aliases("iris")
    return {"production", "candidate"} <= set(aliases)


def _train_two_models() -> None:
    from mlpatterns.cli import training
    from mlpatterns.registry.registry import Registry

    steps = (
        ("logistic regression (the current model)", "logreg", "", "accuracy>=0.9"),
        ("random forest (the challenger)", "random_forest", "n_estimators=50", ""),
    )
    versions = []
    for number, (title, model, params, gate) in enumerate(steps, start=1):
        console.rule(f"{number}. batch training: {title}")
        arguments = training.batch_training_arguments(
            "iris", name="iris", model=model, params=params, gate=gate
        )
        output = training.run_with_progress(
            "batch_training", arguments, training.BATCH_TRAINING_TASKS, 1, True
        )
        training.report_registration(output, "iris")
        versions.append(output)
    if versions[0]:  # the first is what serves today; the training made the second the candidate
        Registry.from_settings(load_settings()).move_alias("iris", "production", versions[0])
        console.print(f"iris@production -> {versions[0]}")
    console.rule("3. the registry")
    registry_cli.models_ls(name="iris", output=Output.TABLE)
