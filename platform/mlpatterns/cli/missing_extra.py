"""Commands whose role's extra is not installed: they show in `mlpatterns --help` and,
when run, say which extra to install and exit 2 instead of failing on an import."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["MISSING_EXTRA_EXIT_CODE", "add_missing_extra"]

MISSING_EXTRA_EXIT_CODE = 2


def add_missing_extra(app: typer.Typer, name: str, extra: str, error: ImportError) -> None:
    """Register `name` as a command that explains which extra it needs and exits 2."""

    def needs_extra(ctx: typer.Context) -> None:
        hint = escape(f"(pip install 'mlpatterns[{extra}]'): {error}")
        Console(stderr=True).print(
            f"[yellow]`mlpatterns {name}` needs the `{extra}` extra {hint}[/yellow]"
        )
        raise typer.Exit(MISSING_EXTRA_EXIT_CODE)

    app.command(
        name,
        help=f"[dim](needs the {extra} extra)[/dim]",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(needs_extra)
