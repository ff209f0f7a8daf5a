"""ONNX export with skl2onnx, checked against scikit-learn before anything is registered.

Three graphs come out of one fitted pipeline:

    model.onnx        raw features -> label, probabilities    (what a model server loads)
    preprocess.onnx   raw features -> features                 (the preprocess server)
    predictor.onnx    features     -> label, probabilities     (the prediction server)

Outputs are plain tensors (no ZipMap): `label` (the class name, a string) and
`probabilities` (float32, one column per class, in the order of the labels).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.pipeline import Pipeline

from mlpatterns.registry.metadata import Latency, Signature, TensorSpec

__all__ = [
    "INPUT",
    "PARITY_TOLERANCE",
    "TARGET_OPSET",
    "ExportedModel",
    "ParityError",
    "export",
    "latency",
    "predict_proba",
    "session",
    "signature",
]

INPUT = "input"
PARITY_TOLERANCE = 1e-5
TARGET_OPSET = 17


class ParityError(AssertionError):
    """The ONNX model's probabilities differ from scikit-learn's: it is not registered."""


@dataclass(frozen=True)
class ExportedModel:
    files: dict[str, bytes]  # model.onnx, preprocess.onnx, predictor.onnx
    max_abs_difference: float


def _convert(estimator: object, n_features: int, *, classifier: bool, name: str) -> bytes:
    options = {id(estimator): {"zipmap": False}} if classifier else None
    onnx_model = convert_sklearn(
        estimator,
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        options=options,
        target_opset=TARGET_OPSET,
    )
    # skl2onnx names the graph with a random UUID; a fixed name makes the export
    # deterministic, so the same training gives the same bytes and the same version.
    onnx_model.graph.name = name
    outputs = onnx_model.graph.output
    if classifier:
        # plain, explicit names for the two tensors every server reads
        _rename_output(onnx_model, outputs[0].name, "label")
        _rename_output(onnx_model, outputs[1].name, "probabilities")
    else:
        _rename_output(onnx_model, outputs[0].name, "features")
    data: bytes = onnx_model.SerializeToString()
    return data


def _rename_output(onnx_model: object, old: str, new: str) -> None:
    graph = onnx_model.graph  # type: ignore[attr-defined]
    for node in graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
    for output in graph.output:
        if output.name == old:
            output.name = new


def session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def predict_proba(model_bytes: bytes, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    outputs = session(model_bytes).run(["probabilities"], {INPUT: features.astype(np.float32)})
    return np.asarray(outputs[0], dtype=np.float32)


def export(pipeline: Pipeline, test_features: npt.NDArray[np.float64]) -> ExportedModel:
    """Export the three graphs; refuse when ONNX and scikit-learn disagree on the test split."""
    n = test_features.shape[1]
    preprocess = Pipeline(pipeline.steps[:-1])
    estimator = pipeline.steps[-1][1]
    files = {
        "model.onnx": _convert(pipeline, n, classifier=True, name="model"),
        "preprocess.onnx": _convert(preprocess, n, classifier=False, name="preprocess"),
        "predictor.onnx": _convert(estimator, n, classifier=True, name="predictor"),
    }
    # scikit-learn sees what ONNX sees: the float32 rounding of the same rows
    rows = test_features.astype(np.float32).astype(np.float64)
    expected = pipeline.predict_proba(rows)
    actual = predict_proba(files["model.onnx"], rows)
    difference = float(np.max(np.abs(actual - expected)))
    if not difference <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX probabilities differ from scikit-learn's by {difference:.2e} "
            f"(> {PARITY_TOLERANCE:g}) on the test split; the model is not registered"
        )
    return ExportedModel(files, difference)


def latency(model_bytes: bytes, row: npt.NDArray[np.float64], runs: int = 200) -> Latency:
    """The model's time for one row, as a server with one thread would see it: `runs`
    timed predictions after a warm-up, as p50 and p99 in milliseconds."""
    sess = session(model_bytes)
    feed = {INPUT: row.reshape(1, -1).astype(np.float32)}
    for _ in range(10):
        sess.run(None, feed)
    took = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        took.append((time.perf_counter() - start) * 1000)
    p50, p99 = np.percentile(took, [50, 99])
    return Latency(p50_ms=round(float(p50), 4), p99_ms=round(float(p99), 4), runs=runs)


def signature(model_bytes: bytes) -> Signature:
    """Input and output names, shapes and dtypes, as onnxruntime reports them."""
    sess = session(model_bytes)

    def specs(nodes: list[ort.NodeArg]) -> list[TensorSpec]:
        return [TensorSpec(name=n.name, shape=list(n.shape), dtype=n.type) for n in nodes]

    return Signature(inputs=specs(sess.get_inputs()), outputs=specs(sess.get_outputs()))
