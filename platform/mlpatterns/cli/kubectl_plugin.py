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
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from mlpatterns.api.edits import apply_changes, traffic_patch
from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.cli import completion
from mlpatterns.cli.traffic_options import (
    NO_SHADOW,
    NO_STICKY,
    OFF,
    ON,
    SHADOW,
    SPLIT,
    STICKY,
)

__all__ = ["GLOBAL_FLAGS", "Kubectl", "app", "console", "hoisted", "main", "root", "traffic"]

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
    live: dict[str, Any] = json.loads(kubectl.run("get", "modelservice", name, "-o", "json"))
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
    kubectl.run("patch", "modelservice", name, "--type", "merge", "-p", patch)
    console.print(
        f"modelservice/{name} patched; `kubectl get ms {name}` shows the weights in force"
    )


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
