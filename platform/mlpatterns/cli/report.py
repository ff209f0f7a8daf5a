"""`mlpatterns report shadow|ab`: the QA patterns' reports from the log streams,
where this runtime keeps them (the configured object store, else MLPATTERNS_HOME) or
where `--from` says, as rich tables and optionally a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlpatterns.logstreams import Place, Stream, place, place_from
from mlpatterns.monitoring import html
from mlpatterns.monitoring.reports import (
    ABReport,
    ShadowReport,
    ab_report,
    shadow_report,
    utc_time,
)
from mlpatterns.settings import load_settings

__all__ = ["HTML", "SOURCE", "ab", "console", "print_ab", "print_shadow", "report_app", "shadow"]

console = Console()
report_app = typer.Typer(help="Shadow and A/B reports from the prediction logs.")

HTML = typer.Option(None, "--html", help="Also write a self-contained HTML page with plots.")


SOURCE = typer.Option(
    None,
    "--from",
    metavar="s3://BUCKET | DIR",
    help="Read the logs from this bucket (the configured endpoint and credentials) or "
    "this folder of an embedded mode's logs (default: where this machine writes them).",
)


def _place(source: str | None) -> Place:
    settings = load_settings()
    if source is None:
        return place(settings)
    try:
        return place_from(source, settings)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--from") from None


def _missing(what: str, name: str, where: Place) -> None:
    console.print(f"[red]no {what} for {escape(name)} in {escape(where.describe())}[/red]")


def _write(path: Path | None, page: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page)
        console.print(f"wrote {escape(str(path))}")


def print_shadow(report: ShadowReport) -> None:
    console.print(
        f"[bold]Shadow report: {escape(report.service)}[/bold]  primary "
        f"{escape(', '.join(report.primary_versions)) or '-'} · shadow "
        f"{escape(', '.join(report.shadow_versions)) or '-'}"
    )
    console.print(
        f"agreement [bold]{report.agreement:.1%}[/bold] over {report.rows} rows in "
        f"{report.pairs} requests ({report.unmatched_shadow} shadow records without a primary)"
    )
    confusion = Table(title="primary (rows) vs shadow (columns)")
    confusion.add_column("")
    for label in report.classes:
        confusion.add_column(escape(label), justify="right")
    for row in report.classes:
        counts = (str(report.confusion.get((row, c), 0)) for c in report.classes)
        confusion.add_row(escape(row), *counts)
    console.print(confusion)
    latency = Table(title="model latency (ms)")
    for column in ("", "count", "p50", "p90", "p99"):
        latency.add_column(column, justify="right")
    for name, lat in (("primary", report.primary_latency), ("shadow", report.shadow_latency)):
        latency.add_row(
            name, str(lat.count), *(f"{x * 1e3:.3f}" for x in (lat.p50, lat.p90, lat.p99))
        )
    console.print(latency)
    if report.mismatches:
        examples = Table(title="disagreements (first few)")
        for column in ("request id", "input", "primary", "shadow"):
            examples.add_column(column)
        for m in report.mismatches:
            examples.add_row(
                *(escape(str(v)) for v in (m.request_id, m.inputs, m.primary, m.shadow))
            )
        console.print(examples)


def print_ab(report: ABReport) -> None:
    console.print(
        f"[bold]Online A/B report: {escape(report.service)}[/bold] "
        f"(control {escape(report.control)})"
    )
    table = Table()
    for column in ("version", "requests", "outcomes", "successes", "rate", "95% interval", "p"):
        table.add_column(column, justify="right")
    p_values = {c.challenger: f"{c.p_value:.3g}" for c in report.comparisons}
    for v in report.versions:
        low, high = v.interval
        table.add_row(
            escape(v.name),
            str(v.requests),
            str(v.outcomes),
            str(v.successes),
            f"{v.rate:.1%}",
            f"{low:.1%} to {high:.1%}",
            escape(p_values.get(v.name, "control")),
        )
    console.print(table)
    console.print(f"test: {escape(report.test)}")
    console.print(f"recommendation: [bold]{escape(report.recommendation)}[/bold]")


@report_app.command("shadow")
def shadow(
    name: str = typer.Argument(..., help="The ModelService's name."),
    html_path: Path | None = HTML,
    source: str | None = SOURCE,
) -> None:
    """Primary vs shadow: agreement, confusion table, latencies, disagreements."""
    where = _place(source)
    records = where.read(Stream.PREDICTIONS, name)
    if not records.items:
        _missing("prediction records", name, where)
        raise typer.Exit(1)
    report = shadow_report(name, records.items)
    print_shadow(report)
    _write(html_path, html.shadow_page(report))


@report_app.command("ab")
def ab(
    name: str = typer.Argument(..., help="The ModelService's name."),
    control: str | None = typer.Option(None, help="The control version (default: most traffic)."),
    since: str | None = typer.Option(
        None, help="Count only requests from this UTC time on, e.g. 2026-11-29T10:00."
    ),
    html_path: Path | None = HTML,
    source: str | None = SOURCE,
) -> None:
    """Per version: requests, outcomes, rates with intervals, a test and a recommendation."""
    start = None
    if since is not None:
        start = utc_time(since)
        if start is None:
            raise typer.BadParameter(
                f"{since!r} is not a time: write ISO 8601, e.g. 2026-11-29T10:00 (UTC) "
                "or 2026-11-29T11:00+01:00",
                param_hint="--since",
            )
    where = _place(source)
    decisions = where.read(Stream.DECISIONS, name, start)
    if not decisions.items:
        _missing("gateway decisions", name, where)
        raise typer.Exit(1)
    versions = sorted({str(d.get("version")) for d in decisions.items})
    if control is not None and control not in versions:
        raise typer.BadParameter(
            f"no version {control!r} in {name}'s decisions; choose one of {', '.join(versions)}",
            param_hint="--control",
        )
    report = ab_report(
        name,
        decisions.items,
        where.read(Stream.FEEDBACK, name, start).items,
        where.read(Stream.PREDICTIONS, name, start).items,
        control,
        start,
    )
    print_ab(report)
    _write(html_path, html.ab_page(report))
