"""Commands that are part of the platform's shape but not built yet.

They exist so that `mlpatterns --help` shows the whole platform from day one,
and they say plainly that they do nothing yet instead of pretending.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["NOT_BUILT_EXIT_CODE", "PlannedCommand", "add_missing_extra", "add_planned"]

NOT_BUILT_EXIT_CODE = 2


@dataclass(frozen=True)
class PlannedCommand:
    name: str
    summary: str
    issue: int | None  # the issue that builds it; None while none is filed

    @property
    def where(self) -> str:
        return f"issue #{self.issue}" if self.issue else "no issue filed yet"

    @property
    def help(self) -> str:
        return f"{self.summary} [dim](not built yet: {self.where})[/dim]"

    @property
    def message(self) -> str:
        return f"`mlpatterns {self.name}` is not built yet ({self.where}); nothing was done."


def add_planned(app: typer.Typer, planned: PlannedCommand) -> None:
    """Register `planned` on `app` as a command that explains it is not built and exits 2."""

    def not_built(ctx: typer.Context) -> None:
        Console(stderr=True).print(f"[yellow]{planned.message}[/yellow]")
        raise typer.Exit(NOT_BUILT_EXIT_CODE)

    app.command(
        planned.name,
        help=planned.help,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(not_built)


def add_missing_extra(app: typer.Typer, name: str, extra: str, error: ImportError) -> None:
    """Register `name` as a command that explains which extra it needs and exits 2."""

    def needs_extra(ctx: typer.Context) -> None:
        hint = escape(f"(pip install 'mlpatterns[{extra}]'): {error}")
        Console(stderr=True).print(
            f"[yellow]`mlpatterns {name}` needs the `{extra}` extra {hint}[/yellow]"
        )
        raise typer.Exit(NOT_BUILT_EXIT_CODE)

    app.command(
        name,
        help=f"[dim](needs the {extra} extra)[/dim]",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(needs_extra)
