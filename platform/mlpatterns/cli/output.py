"""How list, show and report commands print: tables for people, JSON or YAML for
programs (`-o json|yaml`, as kubectl spells it).

Tables are laid out for the terminal they print to and for 80 columns when there is
none (CI and pod logs), which is rich's width off a terminal unless COLUMNS says
otherwise."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

import typer
import yaml
from pydantic import BaseModel
from rich import box
from rich.table import Table

__all__ = ["OUTPUT", "Output", "emit", "new_table", "plain"]


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OUTPUT = typer.Option(
    Output.TABLE,
    "-o",
    "--output",
    case_sensitive=False,
    help="table (for people), json or yaml (for programs).",
)


def plain(value: Any) -> Any:
    """`value` as JSON's types: dataclasses and pydantic models as objects, times as
    ISO 8601, tuples as lists and a tuple key as its parts joined by '/'."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {
            "/".join(map(str, k)) if isinstance(k, tuple) else str(k): plain(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def emit(value: Any, output: Output) -> bool:
    """Print `value` as JSON or YAML when `output` asks for it and say so; False
    leaves the printing (a table) to the caller."""
    if output is Output.TABLE:
        return False
    data = plain(value)
    if output is Output.JSON:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n"))
    return True


def new_table(title: str | None = None) -> Table:
    """A table for a terminal or an 80-column log: a rule under the header and no
    frame, so that a column costs its text and two spaces."""
    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, title_justify="left")
