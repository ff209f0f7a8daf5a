"""`kubectl mlpatterns`: switch a live ModelService's traffic with the same
validation as `mlpatterns traffic set`, then patch it; the operator does the rest.

kubectl finds this as `kubectl-mlpatterns` on PATH (installed with the package).
It calls kubectl itself, so it uses the same kubeconfig and context as the user;
kubectl's global flags (`--kubeconfig`, `--context`, `--cluster`, `--user`, `-n`)
are accepted anywhere on the line and handed on, and kubectl's own errors
reach the user as kubectl wrote them, with its exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from mlpatterns.api.edits import apply_changes, traffic_patch
from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.cli import completion
from mlpatterns.cli.rollout import print_rollout, require_rollout
from mlpatterns.cli.traffic_options import (
    NO_SHADOW,
    NO_STICKY,
    OFF,
    ON,
    SHADOW,
    SPLIT,
    STICKY,
)
from mlpatterns.rollout.decide import Command, refusal
from mlpatterns.rollout.status import status_from

__all__ = [
    "GLOBAL_FLAGS",
    "Kubectl",
    "app",
    "console",
    "hoisted",
    "main",
    "rollout_app",
    "root",
    "traffic",
]

console = Console()
app = typer.Typer(
    name="kubectl-mlpatterns",
    help="kubectl plugin for mlpatterns ModelServices.",
    no_args_is_help=True,
    add_completion=False,
)


@dataclass(frozen=True)
class Kubectl:
    """kubectl with the user's global flags."""

    kubeconfig: str | None = None
    context: str | None = None
    cluster: str | None = None
    user: str | None = None
    namespace: str | None = None

    def flags(self) -> list[str]:
        given = {
            "--kubeconfig": self.kubeconfig,
            "--context": self.context,
            "--cluster": self.cluster,
            "--user": self.user,
            "--namespace": self.namespace,
        }
        return [f"{flag}={value}" for flag, value in given.items() if value]

    def run(self, *args: str) -> str:
        command = [os.environ.get("KUBECTL", "kubectl"), *self.flags(), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.stderr.write(result.stderr)
            raise typer.Exit(result.returncode)
        return result.stdout


KUBECONFIG = typer.Option(None, "--kubeconfig", help="kubectl's --kubeconfig.")
CONTEXT = typer.Option(None, "--context", help="kubectl's --context.")
CLUSTER = typer.Option(None, "--cluster", help="kubectl's --cluster.")
USER = typer.Option(None, "--user", help="kubectl's --user.")
NAMESPACE = typer.Option(None, "-n", "--namespace", help="The ModelService's namespace.")


@app.callback()
def root(
    context: typer.Context,
    kubeconfig: str | None = KUBECONFIG,
    kube_context: str | None = CONTEXT,
    cluster: str | None = CLUSTER,
    user: str | None = USER,
    namespace: str | None = NAMESPACE,
) -> None:
    """kubectl plugin for mlpatterns ModelServices (`kubectl mlpatterns traffic ...`)."""
    context.obj = Kubectl(kubeconfig, kube_context, cluster, user, namespace)


@app.command("traffic")
def traffic(
    context: typer.Context,
    name: str = typer.Argument(..., help="The ModelService's name."),
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
    kubectl = context.obj if isinstance(context.obj, Kubectl) else Kubectl()
    current, _ = _live(kubectl, name)
    try:
        changed = apply_changes(
            current,
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
    kubectl.run("patch", "modelservice", name, "--type", "merge", "-p", patch)
    console.print(
        f"modelservice/{name} patched; `kubectl get ms {name}` shows the weights in force"
    )


rollout_app = typer.Typer(
    help="Follow and steer a ModelService's rollout (spec.rollout).", no_args_is_help=True
)
app.add_typer(rollout_app, name="rollout")
ROLLOUT_COMMAND = "rollout.mlpatterns.io/command"  # what the operator takes, then removes


def _live(kubectl: Kubectl, name: str) -> tuple[ModelService, dict[str, Any]]:
    """The live ModelService, parsed, and as the API server returned it."""
    live: dict[str, Any] = json.loads(kubectl.run("get", "modelservice", name, "-o", "json"))
    data = {k: live[k] for k in ("apiVersion", "kind", "spec")}
    data["metadata"] = {"name": live["metadata"]["name"]}
    try:
        return parse_model_service(data, f"ModelService {name}"), live
    except ModelServiceError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None


def _show(service: ModelService, live: dict[str, Any]) -> None:
    print_rollout(require_rollout(service), status_from((live.get("status") or {}).get("rollout")))


@rollout_app.command("status")
def rollout_status(
    context: typer.Context, name: str = typer.Argument(..., help="The ModelService's name.")
) -> None:
    """The phase, the step, the weights in force and the last analysis."""
    kubectl = context.obj if isinstance(context.obj, Kubectl) else Kubectl()
    _show(*_live(kubectl, name))


def _ask(context: typer.Context, name: str, command: Command, timeout: float = 60.0) -> None:
    kubectl = context.obj if isinstance(context.obj, Kubectl) else Kubectl()
    service, live = _live(kubectl, name)
    require_rollout(service)
    recorded = status_from((live.get("status") or {}).get("rollout"))
    refused = refusal(recorded, command) if recorded is not None else None
    if refused is not None:
        console.print(f"[red]{refused}[/red]")
        raise typer.Exit(1)
    kubectl.run("annotate", "modelservice", name, f"{ROLLOUT_COMMAND}={command}", "--overwrite")
    deadline = time.monotonic() + timeout
    while True:
        service, live = _live(kubectl, name)
        if ROLLOUT_COMMAND not in (live["metadata"].get("annotations") or {}):
            break
        if time.monotonic() > deadline:
            console.print(f"[red]the operator did not take {command} in {timeout:g} s[/red]")
            raise typer.Exit(1)
        time.sleep(0.5)
    _show(service, live)


@rollout_app.command("pause")
def rollout_pause(context: typer.Context, name: str = typer.Argument(...)) -> None:
    """Hold the rollout at its step: weights stay, analyses stop."""
    _ask(context, name, "pause")


@rollout_app.command("resume")
def rollout_resume(context: typer.Context, name: str = typer.Argument(...)) -> None:
    """Go on from a pause."""
    _ask(context, name, "resume")


@rollout_app.command("promote")
def rollout_promote(context: typer.Context, name: str = typer.Argument(...)) -> None:
    """Skip the remaining steps: all traffic to the candidate now."""
    _ask(context, name, "promote")


@rollout_app.command("abort")
def rollout_abort(context: typer.Context, name: str = typer.Argument(...)) -> None:
    """All traffic back to the stable version now (also soon after a promotion)."""
    _ask(context, name, "abort")


GLOBAL_FLAGS = ("--kubeconfig", "--context", "--cluster", "--user", "-n", "--namespace")


def hoisted(argv: list[str]) -> list[str]:
    """`argv` with kubectl's global flags moved before the command, where the plugin's
    root reads them: users write them anywhere, as kubectl lets them."""
    flags: list[str] = []
    rest: list[str] = []
    words = iter(argv)
    for word in words:
        name = word.split("=", 1)[0]
        if name in GLOBAL_FLAGS:
            flags.append(word)
            if "=" not in word:
                flags.append(next(words, ""))
        else:
            rest.append(word)
    return flags + rest


def main() -> None:
    completion.enable("kubectl-mlpatterns")
    app(args=hoisted(sys.argv[1:]))
