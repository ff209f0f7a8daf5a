"""`mlpatterns batch predict`: the batch pattern's job, from the command line or a
CronJob's pod."""

from __future__ import annotations

import json
import signal
import time

import typer

from mlpatterns.cli.serving import SERVICE, VERSION, _fetch, console
from mlpatterns.settings import load_settings

__all__ = ["batch_app", "batch_predict"]


class _BatchStopped(Exception):
    pass


def _stop_batch(signum: int, frame: object) -> None:
    raise _BatchStopped


batch_app = typer.Typer(help="Batch prediction over stored data.", no_args_is_help=True)


@batch_app.command("predict")
def batch_predict(
    model: str = typer.Option(
        ..., help="models:/name/version, models:/name@alias, s3://... or a folder."
    ),
    input: str = typer.Option(
        ...,
        "--input",
        help="data.csv, data.parquet (either may be s3://bucket/key) or data.db:<table>.",
    ),
    output: str = typer.Option(
        ...,
        help="predictions.db (SQLite), predictions.csv, or predictions.parquet "
        "(a folder of Parquet part files; the fast columnar path, which also reads and "
        "writes s3://bucket/key in the registry's object store).",
    ),
    id_column: str = typer.Option("id", help="The column that identifies a row."),
    chunk_rows: int = typer.Option(
        0,
        min=0,
        help="Rows per chunk, committed together (0: 10,000; 100,000 for Parquet parts, "
        "fewer for rows of over 10 features: 4 MiB of features at most).",
    ),
    force: bool = typer.Option(False, help="Predict every row again, even those already done."),
    compression: str | None = typer.Option(
        None,
        help="Parquet parts' codec: none (the default), snappy, lz4, zstd or gzip. "
        "Only the ids compress: snappy makes parts about a fifth smaller, for 5 to 15% "
        "more CPU.",
    ),
    log_predictions: bool = typer.Option(
        True, help="Write every prediction to the prediction log."
    ),
    service: str = SERVICE,
    version: str = VERSION,
) -> None:
    """Predict the rows that have no prediction yet; a rerun redoes only what is missing."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from mlpatterns.logstreams import Stream, open_log, place
    from mlpatterns.serving.batch import (
        BatchInputError,
        BatchResult,
        log_each_prediction,
        predict_batch,
    )
    from mlpatterns.serving.batch.size import count_rows
    from mlpatterns.serving.model import LoadedModel

    loaded = LoadedModel(_fetch(model))
    service = service or loaded.name
    log = None
    if log_predictions:
        where = place(load_settings())
        log = open_log(where, Stream.PREDICTIONS, service, version, writer="batch")

    columns = (
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("rows, {task.fields[rate]}/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    console.print(f"batch {loaded.metadata.ref}: {input} -> {output}")
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("batch", total=count_rows(input), rate="-")
        started = time.monotonic()

        def show(result: BatchResult) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            progress.update(bar, completed=result.read, rate=f"{result.read / elapsed:,.0f}")

        # PID 1 in a container ignores SIGTERM unless it handles it: a deleted Job's pod
        # would run on for its whole grace period. The chunks in hand are written first.
        signal.signal(signal.SIGTERM, _stop_batch)
        try:
            result = predict_batch(
                loaded,
                input,
                output,
                id_column=id_column,
                chunk_rows=chunk_rows or None,
                force=force,
                compression=compression,
                on_chunk=show,
                on_prediction=log_each_prediction(log, loaded, service, version) if log else None,
            )
        except BatchInputError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
        except _BatchStopped:
            console.print(
                f"[yellow]stopped by SIGTERM: what was written to {output} stays, "
                "and a rerun predicts only the rest[/yellow]"
            )
            raise typer.Exit(128 + signal.SIGTERM) from None
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if log is not None:
                log.close()
    for row_id, reason in list(result.rejected.items())[:10]:
        console.print(f"[yellow]rejected row {row_id}: {reason}[/yellow]")
    print(
        json.dumps(
            {
                "read": result.read,
                "predicted": result.predicted,
                "skipped": result.skipped,
                "rejected": len(result.rejected),
                "output": str(output),
            }
        )
    )
