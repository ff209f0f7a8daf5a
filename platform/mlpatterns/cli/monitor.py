"""`mlpatterns monitor`: prediction monitoring from a service's prediction log, each
version's live inputs and predicted classes against the training profile of the
model it served, found in the registry by the digest its records carry."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from mlpatterns.cli.output import OUTPUT, Output, emit, new_table
from mlpatterns.cli.report import (
    HTML,
    SINCE,
    SOURCE,
    UNTIL,
    console,
    print_coverage,
    read_stream,
    write_page,
)
from mlpatterns.logstreams import Stream
from mlpatterns.monitoring.monitor import MonitorReport, monitor_report, verdict
from mlpatterns.registry.metadata import Profile
from mlpatterns.registry.registry import Registry
from mlpatterns.settings import load_settings

__all__ = ["monitor", "print_monitor", "profiles_by_digest"]


def profiles_by_digest(registry: Registry) -> dict[str, Profile]:
    """Every registered version's training profile, by its model file's sha256."""
    found: dict[str, Profile] = {}
    for name in registry.models():
        for metadata in registry.versions(name):
            if metadata.profile is not None:
                found[metadata.sha256] = metadata.profile
    return found


def print_monitor(report: MonitorReport) -> None:
    console.print(f"[bold]Prediction monitoring: {escape(report.coverage.service)}[/bold]")
    print_coverage(report.coverage)
    for drift in report.versions:
        class_mix = (
            "-"
            if drift.class_psi is None
            else f"{drift.class_psi:.3f} ({verdict(drift.class_psi)})"
        )
        console.print(
            f"[bold]{escape(drift.version)}[/bold]: {drift.requests} requests, {drift.rows} rows; "
            f"class mix PSI {class_mix}; repeated inputs {drift.repeated:.1%}"
        )
        if drift.note:
            console.print(f"  {escape(drift.note)}")
        if not drift.features:
            continue
        table = new_table()
        for column in ("feature", "PSI", "KS", "p", "reading"):
            table.add_column(
                column, justify="left" if column in ("feature", "reading") else "right"
            )
        for feature in drift.features:
            table.add_row(
                escape(feature.name),
                f"{feature.psi:.3f}",
                f"{feature.ks:.3f}",
                f"{feature.p_value:.2g}",
                verdict(feature.psi, feature.p_value),
            )
        console.print(table)


def monitor(
    name: str = typer.Argument(..., help="The ModelService's name."),
    since: str | None = SINCE,
    until: str | None = UNTIL,
    html_path: Path | None = HTML,
    source: str | None = SOURCE,
    output: Output = OUTPUT,
) -> None:
    """Live inputs and predictions against the training profile: PSI and KS per
    feature, the class mix, repeated inputs, per version."""
    _, records, start, end = read_stream(Stream.PREDICTIONS, name, since, until, source, html_path)
    profiles = profiles_by_digest(Registry.from_settings(load_settings()))
    report = monitor_report(name, records.items, profiles.get, since=start, until=end)
    if not emit(report.as_data(), output):
        print_monitor(report)
    if html_path is not None:
        from mlpatterns.monitoring.drift_html import monitor_page

        write_page(html_path, monitor_page(report))
