"""The ONNX model server, preprocess server, async worker and queue, batch prediction
and metrics (the prediction log is `mlpatterns.logstreams`).
"""

__all__ = [
    "app",
    "asynchronous",
    "batch",
    "batching",
    "drift_window",
    "inputs",
    "jobs",
    "metrics",
    "model",
    "openapi",
    "prefetch",
    "remote",
    "server",
    "worker",
]  # the room's modules, each with its own __all__
