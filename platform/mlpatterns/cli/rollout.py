"""`mlpatterns rollout`: follow and steer the rollout of a ModelService run by
`mlpatterns up` (training-to-serving). `status` shows the phase, the step, the
weights in force and the last analysis with its numbers; `pause`, `resume`,
`promote` and `abort` are taken by the running `up` on its next tick."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from mlpatterns.api.load import ModelServiceError, load_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.api.rollout import RolloutStatus
from mlpatterns.cli.output import OUTPUT, Output, emit, new_table
from mlpatterns.files import read_if_present
from mlpatterns.rollout.decide import Command, in_force, refusal
from mlpatterns.rollout.status import parse_status
from mlpatterns.settings import load_settings

__all__ = ["print_rollout", "require_rollout", "rollout_app", "rollout_data"]

console = Console()
rollout_app = typer.Typer(
    help="Follow and steer a ModelService's rollout (spec.rollout).", no_args_is_help=True
)
NAME = typer.Argument(..., help="The ModelService's name.")


def rollout_data(service: ModelService, status: RolloutStatus | None) -> dict[str, Any]:
    """What `rollout status -o json|yaml` prints, the same in both runtimes."""
    rollout = service.spec.rollout
    assert rollout is not None
    forced = in_force(service, status).spec
    return {
        "service": service.metadata.name,
        "status": status.model_dump(mode="json", by_alias=True) if status else None,
        "steps": [step.describe() for step in rollout.steps],
        "weights": {d.version: d.weight for d in forced.default_route()},
        "shadow": forced.traffic.shadow.version if forced.traffic.shadow else None,
    }


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def print_rollout(service: ModelService, status: RolloutStatus | None) -> None:
    data = rollout_data(service, status)
    name = escape(service.metadata.name)
    if status is None:
        console.print(f"{name}: the rollout has not started yet (first step: {data['steps'][0]})")
        return
    steps = data["steps"]
    weights = ", ".join(f"{v}={w}" for v, w in data["weights"].items())
    shadow = f"; shadow to {data['shadow']}" if data["shadow"] else ""
    console.print(
        f"[bold]{name}[/bold]: {status.phase}, step {status.step + 1} of {len(steps)} "
        f"({steps[status.step]}); candidate {status.candidate}, stable {status.stable}"
    )
    console.print(f"weights in force: {weights}{shadow}")
    console.print(f"{escape(status.message)}")
    console.print(
        f"this step: {status.step_requests} candidate requests, "
        f"{status.passed_analyses} analyses passed, {status.failures} failed in a row"
    )
    last = status.last_analysis
    if last is None:
        return
    table = new_table(title=f"last analysis {last.time}: {last.verdict} ({last.requests} requests)")
    for column in ("check", "value", "threshold", "result", "detail"):
        table.add_column(column)
    for check in last.checks:
        result = {True: "passed", False: "FAILED", None: "no data"}[check.passed]
        table.add_row(
            check.name, _number(check.value), f"{check.threshold:g}", result, escape(check.detail)
        )
    console.print(table)


def _running(name: str) -> tuple[ModelService, Path]:
    from mlpatterns.local.runtime import NotRunningError, read_state

    home = load_settings().home.resolve()
    try:
        state = read_state(home, name)
        service = load_model_service(Path(state["file"]))
    except (NotRunningError, ModelServiceError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    return require_rollout(service), home


def require_rollout(service: ModelService) -> ModelService:
    """`service`, which must have a spec.rollout, or a plain exit that says so."""
    if service.spec.rollout is None:
        console.print(f"[red]ModelService {service.metadata.name!r} has no spec.rollout[/red]")
        raise typer.Exit(1)
    return service


def _status(home: Path, name: str) -> RolloutStatus | None:
    from mlpatterns.local.rollout import status_path

    return parse_status(read_if_present(status_path(home, name)))


@rollout_app.command("status")
def status(name: str = NAME, output: Output = OUTPUT) -> None:
    """The phase, the step, the weights in force and the last analysis."""
    service, home = _running(name)
    recorded = _status(home, name)
    if emit(rollout_data(service, recorded), output):
        return
    print_rollout(service, recorded)


def _ask(name: str, command: Command, timeout: float = 15.0) -> None:
    from mlpatterns.local.rollout import request_command

    service, home = _running(name)
    recorded = _status(home, name)
    refused = refusal(recorded, command) if recorded is not None else None
    if refused is not None:
        console.print(f"[red]{refused}[/red]")
        raise typer.Exit(1)
    path = request_command(home, name, command)
    deadline = time.monotonic() + timeout
    while path.exists():
        if time.monotonic() > deadline:
            path.unlink(missing_ok=True)
            console.print(f"[red]`mlpatterns up` did not take {command} in {timeout:g} s[/red]")
            raise typer.Exit(1)
        time.sleep(0.1)
    print_rollout(service, _status(home, name))


@rollout_app.command("pause")
def pause(name: str = NAME) -> None:
    """Hold the rollout at its step: weights stay, analyses stop."""
    _ask(name, "pause")


@rollout_app.command("resume")
def resume(name: str = NAME) -> None:
    """Go on from a pause."""
    _ask(name, "resume")


@rollout_app.command("promote")
def promote(name: str = NAME) -> None:
    """Skip the remaining steps: all traffic to the candidate now."""
    _ask(name, "promote")


@rollout_app.command("abort")
def abort(name: str = NAME) -> None:
    """All traffic back to the stable version now (also soon after a promotion)."""
    _ask(name, "abort")
