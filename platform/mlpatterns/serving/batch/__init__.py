"""Batch prediction over stored data: predict the rows that have no prediction yet.

A job reads its input in chunks, selects from the ids which rows to predict (not one
with a prediction already, not a repeat of an earlier row, not one without an id),
predicts them, and commits each chunk's results together: one SQLite transaction,
one synced CSV append, or one Parquet part written under a temporary name, synced and
renamed (in an object store, one upload). So a rerun predicts only what a crash left
missing, no id is predicted twice unless `force` asks, and a row that cannot be read
is rejected with its reason, never dropped. Two paths share those rules (`base`):
row by row (`rows`: CSV, Parquet or a SQLite table in; SQLite or CSV out) and
columnar (`columnar`: CSV or Parquet in, Parquet parts out), where pyarrow handles
whole chunks, reading and selecting run on threads of their own beside predicting,
and labels are written as class indices.

    inputs:  data.csv | data.parquet | data.db:table   (an id column and the model's features)
    outputs: predictions.db | predictions.csv | predictions.parquet/ (part files)

The columnar path also reads and writes `s3://bucket/key` (`places`).
"""

from mlpatterns.serving.batch.base import (
    BatchInputError,
    BatchResult,
    OnPrediction,
    columnar_chunk_rows,
)
from mlpatterns.serving.batch.job import log_each_prediction, predict_batch

__all__ = [
    "BatchInputError",
    "BatchResult",
    "OnPrediction",
    "columnar_chunk_rows",
    "log_each_prediction",
    "predict_batch",
]
