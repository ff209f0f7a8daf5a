"""`mlpatterns lint`: the catalog's anti-patterns in a repository, for people and CI
(exit 0: none found; 1: findings; 2: something could not be checked)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from mlpatterns.settings import load_settings

if TYPE_CHECKING:
    from mlpatterns.lint.scan import Resolver

__all__ = ["lint"]

console = Console()
FOUND = 1
COULD_NOT_RUN = 2


class Format(StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


def lint(
    paths: list[Path] = typer.Argument(
        None, help="Files and folders to check (default: the current folder)."
    ),
    output_format: Format = typer.Option(
        Format.TEXT, "--format", case_sensitive=False, help="text, json, or sarif (2.1.0)."
    ),
    registry: bool = typer.Option(
        True,
        "--registry/--no-registry",
        help="Read the served models' metadata from the registry of these settings, for "
        "the latency and lineage checks.",
    ),
    max_pipeline_images: int = typer.Option(3, min=1, help="too-many-pipes: images."),
    max_pipeline_sources: int = typer.Option(2, min=1, help="too-many-pipes: data locations."),
    max_pipeline_handoffs: int = typer.Option(
        4, min=0, help="too-many-pipes: hand-offs between images."
    ),
) -> None:
    """Check ModelServices, pipelines, Dockerfiles and models for the catalog's anti-patterns."""
    from mlpatterns.lint.formats import as_json, as_sarif
    from mlpatterns.lint.pipelines import PipeLimits
    from mlpatterns.lint.scan import lint_paths

    limits = PipeLimits(max_pipeline_images, max_pipeline_sources, max_pipeline_handoffs)
    roots = paths or [Path()]
    report = lint_paths(
        roots, resolve=_resolver() if registry else None, limits=limits, relative_to=Path()
    )
    if output_format is Format.JSON:
        print(json.dumps(as_json(report), indent=2))
    elif output_format is Format.SARIF:
        print(json.dumps(as_sarif(report), indent=2))
    else:
        for finding in report.findings:
            where = escape(f"{finding.path}:{finding.line}")
            console.print(
                f"{where}: [yellow]{finding.rule}[/yellow] {escape(finding.message)}\n"
                f"  fix: {escape(finding.fix)} [dim](pattern: {escape(finding.pattern)})[/dim]"
            )
        for problem in report.problems:
            console.print(f"[red]{escape(problem)}[/red]")
        for note in report.notes:
            console.print(f"[dim]note: {escape(note)}[/dim]")
        count = len(report.findings)
        console.print(f"{count} finding{'s' * (count != 1)} in {len(report.checked)} files")
    if report.problems:
        raise typer.Exit(COULD_NOT_RUN)
    if report.findings:
        raise typer.Exit(FOUND)


def _resolver() -> Resolver | None:
    """The registry of these settings, if there is one."""
    from mlpatterns.registry.registry import Registry

    settings = load_settings()
    if not (settings.uses_object_storage or (settings.home / "registry").is_dir()):
        return None
    return Registry.from_settings(settings).resolve
