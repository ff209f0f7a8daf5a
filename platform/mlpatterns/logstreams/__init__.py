"""The log streams (predictions, gateway decisions, feedback): where each is kept in
both runtimes, its buffered writer and its reader."""

from mlpatterns.logstreams.streams import (
    Bucket,
    Folder,
    Place,
    Records,
    Stream,
    open_log,
    place,
    place_from,
    prediction_record,
)
from mlpatterns.logstreams.writer import FileSink, RecordLog, Sink, StoreSink

__all__ = [
    "Bucket",
    "FileSink",
    "Folder",
    "Place",
    "RecordLog",
    "Records",
    "Sink",
    "StoreSink",
    "Stream",
    "open_log",
    "place",
    "place_from",
    "prediction_record",
]
