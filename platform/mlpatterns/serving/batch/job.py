"""A batch job: the columnar path for Parquet parts, the row-by-row path otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mlpatterns.logstreams import RecordLog, prediction_record
from mlpatterns.serving.batch.base import (
    CHUNK_ROWS,
    S3,
    BatchInputError,
    BatchResult,
    OnPrediction,
    columnar_chunk_rows,
)
from mlpatterns.serving.batch.rows import predict_rows
from mlpatterns.serving.model import LoadedModel, Prediction

__all__ = ["log_each_prediction", "predict_batch"]


def predict_batch(
    model: LoadedModel,
    source: str,
    output: str | Path,
    *,
    id_column: str = "id",
    chunk_rows: int | None = None,
    force: bool = False,
    compression: str | None = None,
    on_chunk: Callable[[BatchResult], None] = lambda result: None,
    on_prediction: OnPrediction | None = None,
) -> BatchResult:
    """Predict the rows of `source` that have no prediction in `output` yet.

    `source` and `output` are paths here, or `s3://bucket/key` in the object store
    the settings name, for the columnar path (an output named *.parquet) only.

    `chunk_rows`: rows committed together; by default 10,000 row by row (SQLite, CSV)
    and `columnar_chunk_rows` for Parquet parts. `compression`: the Parquet parts' codec
    (`parts.COMPRESSIONS`; by default none), for Parquet output only. `on_prediction`
    is handed each committed chunk's ids, features and predictions (the prediction
    log's writer, `log_each_prediction`)."""
    if str(output).endswith(".parquet"):  # a folder of part files: the columnar path
        from mlpatterns.serving.batch.columnar import predict_to_parts  # pyarrow's import
        from mlpatterns.serving.batch.places import place

        return predict_to_parts(
            model,
            place(source),
            place(output),
            id_column=id_column,
            chunk_rows=chunk_rows or columnar_chunk_rows(model.n_features),
            force=force,
            compression=compression,
            on_chunk=on_chunk,
            on_prediction=on_prediction,
        )
    if any(str(location).startswith(S3) for location in (source, output)):
        raise BatchInputError(
            f"{source} -> {output}: s3:// is read and written by the columnar path only: "
            "name the output s3://<bucket>/<prefix>.parquet (a folder of Parquet parts)"
        )
    if compression is not None:
        raise BatchInputError(
            f"{output}: compression applies to Parquet parts only (an output named *.parquet)"
        )
    return predict_rows(
        model,
        source,
        Path(output),
        id_column=id_column,
        chunk_rows=chunk_rows or CHUNK_ROWS,
        force=force,
        on_chunk=on_chunk,
        on_prediction=on_prediction,
    )


def log_each_prediction(
    log: RecordLog, model: LoadedModel, service: str = "", version: str = ""
) -> OnPrediction:
    """A callback that writes one prediction-log record per row, waiting for room."""
    service = service or model.name

    def write(ids: list[str], rows: npt.NDArray[np.float32], prediction: Prediction) -> None:
        for row_id, features, label, probabilities in zip(
            ids, rows.tolist(), prediction.labels, prediction.probabilities, strict=True
        ):
            entry = prediction_record(
                request_id=f"batch:{row_id}",
                service=service,
                version=version,
                model=model.version,
                digest=model.sha256,
                inputs=features,
                outputs={"label": label, "probabilities": probabilities},
                latency=0.0,
            )
            log.submit(entry, wait=True)

    return write
