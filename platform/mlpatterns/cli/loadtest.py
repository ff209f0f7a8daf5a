"""`mlpatterns loadtest`: the loading-test pattern, as a command a rollout or a CI job
can gate on (exit 0: every threshold met; 1: one failed; 2: it could not run)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.console import Console

from mlpatterns.cli.output import OUTPUT, Output, emit, new_table
from mlpatterns.settings import load_settings

__all__ = ["loadtest"]

console = Console()
COULD_NOT_RUN = 2


def loadtest(
    file: Path = typer.Option(
        ..., "-f", "--file", help="The ModelService (YAML) whose spec.loadTest to run."
    ),
    url: str = typer.Option(
        "",
        help="Where to send the load (a gateway, or one version's server); default: the "
        "gateway of this ModelService run by `mlpatterns up`.",
    ),
    output: Output = OUTPUT,
) -> None:
    """Load a ModelService as its spec.loadTest says; exit 1 when a threshold fails."""
    from mlpatterns.api.load import ModelServiceError, load_model_service
    from mlpatterns.loadtest import LoadTestError, run, verdicts

    try:
        service = load_model_service(file)
    except ModelServiceError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(COULD_NOT_RUN) from None
    test = service.spec.load_test
    if test is None:
        console.print(
            f"[red]{file} has no spec.loadTest: add one (rate or concurrency, durationSeconds, "
            "body, thresholds), see docs/operation.md[/red]"
        )
        raise typer.Exit(COULD_NOT_RUN)
    target = url or _running_gateway(service.metadata.name)
    try:
        with tempfile.TemporaryDirectory() as folder:
            result = run(target, test, Path(folder))
    except LoadTestError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(COULD_NOT_RUN) from None
    judged = verdicts(result, test.thresholds)
    if not emit({"result": result, "verdicts": judged}, output):
        load = f"{test.rate}/s" if test.rate is not None else f"{test.concurrency} clients"
        console.print(
            f"{result.requests} requests to {target}{test.path} ({load} for "
            f"{test.duration_seconds:g} s): {result.rate:.1f}/s sent, "
            f"p90 {result.p90_ms:.2f} ms, max {result.max_ms:.2f} ms, "
            f"status {result.status_codes or 'none'}"
        )
        for failure in result.errors[:5]:
            console.print(f"  error: {failure}")
        table = new_table()
        for column in ("measure", "threshold", "value", "verdict"):
            table.add_column(column)
        for verdict in judged:
            mark = "[green]pass[/green]" if verdict.passed else "[red]FAIL[/red]"
            table.add_row(verdict.measure, verdict.threshold, verdict.value, mark)
        console.print(table)
    if not all(verdict.passed for verdict in judged):
        raise typer.Exit(1)


def _running_gateway(name: str) -> str:
    try:
        from mlpatterns.local.runtime import NotRunningError, read_state
    except ImportError:  # the embedded mode is the serving extra's
        console.print("[red]give --url: the embedded mode is not installed here[/red]")
        raise typer.Exit(COULD_NOT_RUN) from None
    try:
        state = read_state(load_settings().home.resolve(), name)
    except NotRunningError as error:
        console.print(f"[red]{error}; or give --url[/red]")
        raise typer.Exit(COULD_NOT_RUN) from None
    gateway: str | None = state.get("gateway_url")
    if not gateway:
        console.print(f"[red]{name} runs without a gateway here; give --url[/red]")
        raise typer.Exit(COULD_NOT_RUN)
    return gateway
