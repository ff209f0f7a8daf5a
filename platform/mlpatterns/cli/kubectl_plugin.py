"""`kubectl mlpatterns`: switch a live ModelService's traffic with the same
validation as `mlpatterns traffic set`, then patch it; the operator does the rest.

kubectl finds this as `kubectl-mlpatterns` on PATH (installed with the package).
It calls kubectl itself, so it uses the same kubeconfig and context as the user.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import typer
from rich.console import Console

from mlpatterns.api.edits import apply_changes, traffic_patch
from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.cli.traffic_options import (
    NO_SHADOW,
    NO_STICKY,
    OFF,
    ON,
    SHADOW,
    SPLIT,
    STICKY,
)

__all__ = ["app", "console", "main", "root", "traffic"]

console = Console()
app = typer.Typer(
    name="kubectl-mlpatterns",
    help="kubectl plugin for mlpatterns ModelServices.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def root() -> None:
    """kubectl plugin for mlpatterns ModelServices (`kubectl mlpatterns traffic ...`)."""


def _kubectl(*args: str) -> str:
    command = [os.environ.get("KUBECTL", "kubectl"), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        console.print(f"[red]{' '.join(command[:3])} ...: {result.stderr.strip()}[/red]")
        raise typer.Exit(1)
    return result.stdout


def _live(name: str, namespace: str | None) -> dict[str, Any]:
    where = ["-n", namespace] if namespace else []
    found: dict[str, Any] = json.loads(_kubectl("get", "modelservice", name, *where, "-o", "json"))
    return found


@app.command("traffic")
def traffic(
    name: str = typer.Argument(..., help="The ModelService's name."),
    namespace: str | None = typer.Option(None, "-n", "--namespace", help="Its namespace."),
    split: str | None = SPLIT,
    shadow: str | None = SHADOW,
    no_shadow: bool = NO_SHADOW,
    off: list[str] = OFF,
    on: list[str] = ON,
    sticky: str | None = STICKY,
    no_sticky: bool = NO_STICKY,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the patch; change nothing."),
) -> None:
    """Validate a traffic change against the live ModelService, then patch it."""
    live = _live(name, namespace)
    data = {k: live[k] for k in ("apiVersion", "kind", "spec")}
    data["metadata"] = {"name": live["metadata"]["name"]}
    try:
        changed = apply_changes(
            parse_model_service(data, f"ModelService {name}"),
            split=split,
            shadow=shadow,
            no_shadow=no_shadow,
            off=off,
            on=on,
            sticky=sticky,
            no_sticky=no_sticky,
        )
    except ModelServiceError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    patch = json.dumps(traffic_patch(changed))
    if dry_run:
        typer.echo(patch)
        return
    where = ["-n", namespace] if namespace else []
    _kubectl("patch", "modelservice", name, *where, "--type", "merge", "-p", patch)
    console.print(
        f"modelservice/{name} patched; `kubectl get ms {name}` shows the weights in force"
    )


def main() -> None:
    app()
