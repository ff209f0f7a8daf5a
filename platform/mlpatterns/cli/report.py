"""`mlpatterns report shadow|ab`: the QA patterns' reports from the log streams,
where this runtime keeps them (the configured object store, else MLPATTERNS_HOME) or
where `--from` says, as rich tables and optionally a self-contained HTML page."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from mlpatterns.cli.output import OUTPUT, Output, emit, new_table
from mlpatterns.logstreams import Place, Records, Stream, place, place_from
from mlpatterns.monitoring.coverage import ALL_PHASES, Coverage, utc_time
from mlpatterns.monitoring.reports import ABReport, ShadowReport, ab_report, shadow_report
from mlpatterns.settings import load_settings

__all__ = [
    "HTML",
    "SINCE",
    "SOURCE",
    "UNTIL",
    "ab",
    "console",
    "print_ab",
    "print_coverage",
    "print_shadow",
    "read_stream",
    "report_app",
    "shadow",
    "write_page",
]

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


SINCE = typer.Option(
    None, help="Count only records from this time on: ISO 8601, UTC unless it has an offset."
)
UNTIL = typer.Option(None, help="Count only records up to this time (ISO 8601, inclusive).")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    parsed = utc_time(value)
    if parsed is None:
        raise typer.BadParameter(
            f"{value!r} is not a time: write ISO 8601, e.g. 2026-11-29T10:00 (UTC) "
            "or 2026-11-29T11:00+01:00",
            param_hint=option,
        )
    return parsed


def _check_html(path: Path | None) -> None:
    """Refuse --html before any work when the plots' library is missing."""
    if path is not None and importlib.util.find_spec("matplotlib") is None:
        raise typer.BadParameter(
            "the HTML pages' plots need the reports extra: pip install 'mlpatterns[reports]'",
            param_hint="--html",
        )


def _place(source: str | None) -> Place:
    settings = load_settings()
    if source is None:
        return place(settings)
    try:
        return place_from(source, settings)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--from") from None


def read_stream(
    stream: Stream,
    name: str,
    since: str | None,
    until: str | None,
    source: str | None,
    html_path: Path | None,
) -> tuple[Place, Records, datetime | None, datetime | None]:
    """Every option checked, then the stream's records (from `since`'s hour on), or
    exit 1 saying there are none."""
    _check_html(html_path)
    start, end = _time(since, "--since"), _time(until, "--until")
    where = _place(source)
    records = where.read(stream, name, start)
    if not records.items:
        what = {Stream.PREDICTIONS: "prediction records", Stream.DECISIONS: "gateway decisions"}[
            stream
        ]
        console.print(f"[red]no {what} for {escape(name)} in {escape(where.describe())}[/red]")
        raise typer.Exit(1)
    return where, records, start, end


def _show(data: dict[str, object], output: Output, table: Callable[[], None]) -> None:
    if not emit(data, output):
        table()


def write_page(path: Path, page: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    console.print(f"wrote {escape(str(path))}")


def print_coverage(coverage: Coverage) -> None:
    """What the report covers: phase, time range, and each version's model and digest."""
    console.print(f"phase: {escape(coverage.phase) or '(not recorded)'}")
    console.print(f"records: {escape(coverage.window)}")
    for served in coverage.versions:
        model = f"model {escape(served.model)}" if served.model else "model unknown"
        digest = f" sha256 {served.digest[:12]}" if served.digest else ""
        console.print(f"  {escape(served.name)}: {model}{digest}")


def print_shadow(report: ShadowReport) -> None:
    console.print(f"[bold]Shadow report: {escape(report.service)}[/bold]")
    print_coverage(report.coverage)
    console.print(
        f"agreement [bold]{report.agreement:.1%}[/bold] over {report.rows} rows in "
        f"{report.pairs} requests ({report.unmatched_shadow} shadow records without a primary)"
    )
    confusion = new_table(title="primary (rows) vs shadow (columns)")
    confusion.add_column("")
    for label in report.classes:
        confusion.add_column(escape(label), justify="right")
    for row in report.classes:
        counts = (str(report.confusion.get((row, c), 0)) for c in report.classes)
        confusion.add_row(escape(row), *counts)
    console.print(confusion)
    latency = new_table(title="model latency (ms)")
    for column in ("", "count", "p50", "p90", "p99"):
        latency.add_column(column, justify="right")
    for name, lat in (("primary", report.primary_latency), ("shadow", report.shadow_latency)):
        latency.add_row(
            name, str(lat.count), *(f"{x * 1e3:.3f}" for x in (lat.p50, lat.p90, lat.p99))
        )
    console.print(latency)
    if report.mismatches:
        examples = new_table(title="disagreements (first few)")
        examples.add_column("request id", no_wrap=True, min_width=32)
        for column in ("input", "primary", "shadow"):
            examples.add_column(column, overflow="fold")
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
    print_coverage(report.coverage)
    table = new_table()
    for column in ("version", "requests", "right/outcomes", "rate", "95% interval", "p"):
        table.add_column(column, justify="right", no_wrap=column != "version")
    p_values = {c.challenger: f"{c.p_value:.3g}" for c in report.comparisons}
    for v in report.versions:
        low, high = v.interval
        table.add_row(
            escape(v.name),
            str(v.requests),
            f"{v.successes}/{v.outcomes}",
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
    since: str | None = SINCE,
    until: str | None = UNTIL,
    html_path: Path | None = HTML,
    source: str | None = SOURCE,
    output: Output = OUTPUT,
) -> None:
    """Primary vs shadow: agreement, confusion table, latencies, disagreements."""
    _, records, start, end = read_stream(Stream.PREDICTIONS, name, since, until, source, html_path)
    report = shadow_report(name, records.items, since=start, until=end)
    _show(report.as_data(), output, lambda: print_shadow(report))
    if html_path is not None:
        from mlpatterns.monitoring import html

        write_page(html_path, html.shadow_page(report))


@report_app.command("ab")
def ab(
    name: str = typer.Argument(..., help="The ModelService's name."),
    control: str | None = typer.Option(None, help="The control version (default: most traffic)."),
    since: str | None = SINCE,
    until: str | None = UNTIL,
    phase: str | None = typer.Option(
        None,
        help="The traffic phase to count, as the report prints it (default: the latest "
        f"decision's); {ALL_PHASES!r} counts every phase.",
    ),
    html_path: Path | None = HTML,
    source: str | None = SOURCE,
    output: Output = OUTPUT,
) -> None:
    """Per version: requests, outcomes, rates with intervals, a test and a recommendation."""
    where, decisions, start, end = read_stream(
        Stream.DECISIONS, name, since, until, source, html_path
    )
    phases = sorted({str(d.get("phase", "")) for d in decisions.items})
    if phase is not None and phase != ALL_PHASES and phase not in phases:
        raise typer.BadParameter(
            f"no phase {phase!r} in {name}'s decisions; choose {ALL_PHASES!r} or one of: "
            + " | ".join(repr(p) for p in phases),
            param_hint="--phase",
        )
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
        end,
        phase,
    )
    _show(report.as_data(), output, lambda: print_ab(report))
    if html_path is not None:
        from mlpatterns.monitoring import html

        write_page(html_path, html.ab_page(report))
