"""A model as a server holds it: an ONNX file whose digest was checked, its metadata,
and an onnxruntime session. Loading refuses anything that does not match."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from mlpatterns.registry.metadata import MODEL_FILE, ModelMetadata

__all__ = [
    "FLOAT32_MAX",
    "MAX_ROWS",
    "METADATA_FILE",
    "LoadedModel",
    "ModelLoadError",
    "Prediction",
    "new_session",
]

METADATA_FILE = "metadata.json"
MAX_ROWS = 10_000  # rows one request may ask for
FLOAT32_MAX = 3.4028234663852886e38  # the model computes in float32


class ModelLoadError(RuntimeError):
    """The model cannot be served; the message names the model and the reason."""


@dataclass(frozen=True)
class Prediction:
    """Labels and probabilities of some rows, as Python values: every reader (responses,
    logs, job results, batch outputs) wants lists, and one conversion per model run
    costs less than one per request."""

    labels: list[str]
    probabilities: list[list[float]]  # rows x classes
    finite: bool  # every probability is a number: extreme inputs can overflow a model's math

    @classmethod
    def checked(cls, labels: list[str], probabilities: npt.NDArray[np.float32]) -> Prediction:
        return cls(labels, probabilities.tolist(), bool(np.isfinite(probabilities).all()))

    def rows(self, start: int, end: int) -> Prediction:
        """The prediction of rows start..end; a finite whole needs no second check."""
        labels, probabilities = self.labels[start:end], self.probabilities[start:end]
        finite = self.finite or all(math.isfinite(p) for row in probabilities for p in row)
        return Prediction(labels, probabilities, finite)


def new_session(model: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # onnxruntime's worker threads spin between runs by default; here they would
    # spin on the cores the server's own event loop needs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class LoadedModel:
    """One ONNX model, ready to predict. Thread-safe: onnxruntime sessions are."""

    def __init__(self, folder: Path, file_name: str = MODEL_FILE, threads: int = 1) -> None:
        try:
            self.metadata = ModelMetadata.model_validate_json((folder / METADATA_FILE).read_bytes())
        except OSError as error:
            raise ModelLoadError(f"no readable {METADATA_FILE} in {folder}: {error}") from None
        except ValueError as error:
            raise ModelLoadError(
                f"{folder / METADATA_FILE} is not model metadata: {error}"
            ) from None
        expected = self.metadata.files.get(file_name)
        if expected is None:
            raise ModelLoadError(f"{self.metadata.ref} has no {file_name}")
        try:
            data = (folder / file_name).read_bytes()
        except OSError as error:
            raise ModelLoadError(f"{self.metadata.ref}: cannot read {file_name}: {error}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ModelLoadError(
                f"{self.metadata.ref}: {file_name} has sha256 {actual}, but its metadata "
                f"records {expected}; refusing to load a model that is not the registered one"
            )
        try:
            self.session = new_session(data, threads)
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelLoadError(
                f"{self.metadata.ref}: onnxruntime cannot load it: {error}"
            ) from None
        self.file_name = file_name
        self.checked_bytes = data  # for graphs derived from this one (class_indices)
        self.threads = threads
        self.name = self.metadata.name  # read on every request: attributes, not properties
        self.version = self.metadata.version
        self.sha256 = actual
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.n_features = int(inputs[0].shape[1])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.labels = list(self.metadata.labels)
        self.version_header = self.metadata.version.encode("latin-1")

    def transform(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """For a preprocessing graph (preprocess.onnx): raw rows -> model features."""
        (features,) = self.session.run(["features"], {self.input_name: rows})
        return np.asarray(features, dtype=np.float32)

    def predict(self, rows: npt.NDArray[np.float32]) -> Prediction:
        """Labels and probabilities for float32 rows of `n_features` columns."""
        labels, probabilities = self.session.run(
            ["label", "probabilities"], {self.input_name: rows}
        )
        return Prediction.checked(
            [str(v) for v in labels], np.asarray(probabilities, dtype=np.float32)
        )
