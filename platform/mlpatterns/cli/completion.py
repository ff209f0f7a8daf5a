"""`mlpatterns completion bash|zsh|fish`: the shell completion script, which calls
`mlpatterns` back to complete commands, options and choices as the CLI defines them.

    source <(mlpatterns completion bash)                      # this shell
    mlpatterns completion bash > /etc/bash_completion.d/mlpatterns
    mlpatterns completion zsh > "${fpath[1]}/_mlpatterns"
    mlpatterns completion fish > ~/.config/fish/completions/mlpatterns.fish
"""

from __future__ import annotations

import os
from enum import StrEnum

import typer
from typer.completion import get_completion_inspect_parameters, shell_complete

__all__ = ["PROGRAMS", "Shell", "completion", "enable", "variable"]

PROGRAMS = ("mlpatterns", "kubectl-mlpatterns")


class Shell(StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


def variable(program: str) -> str:
    """The environment variable through which the script asks `program` to complete."""
    return f"_{program.replace('-', '_').upper()}_COMPLETE"


def enable(program: str) -> None:
    """When the completion script is asking (its variable is set), load typer's shell
    support, which answers the request instead of running a command."""
    if os.environ.get(variable(program)):
        get_completion_inspect_parameters()


def completion(
    context: typer.Context,
    shell: Shell = typer.Argument(..., help="bash, zsh or fish."),
) -> None:
    """Print the shell completion script, e.g. `source <(mlpatterns completion bash)`."""
    get_completion_inspect_parameters()
    root = context.find_root()
    program = root.info_name or "mlpatterns"
    raise typer.Exit(
        shell_complete(root.command, {}, program, variable(program), f"source_{shell.value}")
    )
