"""Class indices instead of class names: the rewritten graph must choose the same class
and give the same probabilities as the registered one, for every model type training
offers; a graph it does not recognise keeps its names and still predicts right."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mlpatterns.registry.metadata import DatasetSchema
from mlpatterns.registry.registry import Registry
from mlpatterns.registry.store import LocalStore
from mlpatterns.serving.batch import protobuf_wire as wire
from mlpatterns.serving.batch.class_indices import (
    INTEGER_LABELS_ATTRIBUTE,
    ClassIndexPredictor,
    with_class_indices,
)
from mlpatterns.serving.model import LoadedModel
from mlpatterns.training import datasets, export, models, validation
from mlpatterns.training.steps import TrainingRequest, run_directly

pytestmark = pytest.mark.unit


def iris_and_wide_rows() -> np.ndarray:
    """Iris itself, and rows far outside it, where classes are decided by small margins."""
    table = validation.validate(*_iris())
    wide = np.random.default_rng(7).uniform(-50, 50, size=(2_000, table.features.shape[1]))
    return np.vstack([table.features, wide]).astype(np.float32)


def _iris() -> tuple[bytes, DatasetSchema]:
    raw = datasets.load_builtin("iris")
    return raw.csv_bytes, raw.schema


def run(model: bytes, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"input": rows})
    return np.asarray(labels), np.asarray(probabilities)


@pytest.mark.parametrize("model_type", sorted(models.ESTIMATORS))
def test_the_same_classes_and_probabilities_for_every_model_type(model_type: str) -> None:
    table = validation.validate(*_iris())
    fitted = models.build(model_type, {}, 42).fit(table.features, table.labels)
    registered = export.export(fitted, table.features).files["model.onnx"]
    indexed = with_class_indices(registered)
    assert indexed is not None, f"{model_type}: its classifier node was not recognised"
    assert indexed.classes == [str(c) for c in fitted.classes_]
    rows = iris_and_wide_rows()
    names, probabilities = run(registered, rows)
    indices, indexed_probabilities = run(indexed.model, rows)
    assert indices.dtype == np.int64
    assert np.asarray(indexed.classes, dtype=object)[indices].tolist() == names.tolist()
    assert np.array_equal(indexed_probabilities, probabilities)
    assert onnx.load_from_string(indexed.model) == edited_with_onnx(registered)


def edited_with_onnx(model: bytes) -> onnx.ModelProto:
    """The same edit made with the onnx package, which parses the whole model: the
    wire-level rewrite must give an equal message, with nothing else changed."""
    proto = onnx.load_from_string(model)
    node = next(node for node in proto.graph.node if "label" in node.output)
    index, names = next(
        (index, attribute)
        for index, attribute in enumerate(node.attribute)
        if attribute.name == "classlabels_strings"
    )
    indices = list(range(len(names.strings)))
    attribute = onnx.helper.make_attribute(INTEGER_LABELS_ATTRIBUTE[node.op_type], indices)
    node.attribute[index].CopyFrom(attribute)
    label = next(output for output in proto.graph.output if output.name == "label")
    label.type.tensor_type.elem_type = onnx.TensorProto.INT64
    return proto


def label_through_identity(model: bytes) -> bytes:
    """The same model with its label passed on by one more node: not a classifier's
    output any more, so the rewrite must decline it."""
    graph = onnx.load_from_string(model)
    for node in graph.graph.node:
        node.output[:] = ["label_raw" if name == "label" else name for name in node.output]
    graph.graph.node.append(onnx.helper.make_node("Identity", ["label_raw"], ["label"]))
    return graph.SerializeToString()


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLPATTERNS_HOME", str(folder))
        version = run_directly(TrainingRequest(dataset="iris", name="iris"))
    model_dir = folder / "fetched"
    Registry(LocalStore(folder / "registry")).fetch(f"models:/iris/{version}", model_dir)
    return model_dir


def with_model_file(source: Path, target: Path, model: bytes) -> Path:
    """A copy of a fetched model whose metadata records the digest of `model`."""
    shutil.copytree(source, target)
    (target / "model.onnx").write_bytes(model)
    metadata = LoadedModel(source).metadata
    digest = hashlib.sha256(model).hexdigest()
    changed = metadata.model_copy(
        update={"sha256": digest, "files": {**metadata.files, "model.onnx": digest}}
    )
    (target / "metadata.json").write_text(changed.model_dump_json())
    return target


def test_the_predictor_uses_the_rewritten_graph_and_agrees_with_the_model(
    fetched: Path,
) -> None:
    model = LoadedModel(fetched)
    predictor = ClassIndexPredictor(model)
    assert predictor.rewritten
    rows = iris_and_wide_rows()
    indices, probabilities = predictor.predict(rows)
    expected = model.predict(rows)
    assert [predictor.classes[i] for i in indices.tolist()] == expected.labels
    assert probabilities.tolist() == expected.probabilities


def test_a_label_not_from_a_classifier_keeps_its_names(fetched: Path, tmp_path: Path) -> None:
    model_bytes = label_through_identity((fetched / "model.onnx").read_bytes())
    assert with_class_indices(model_bytes) is None
    model = LoadedModel(with_model_file(fetched, tmp_path / "identity", model_bytes))
    predictor = ClassIndexPredictor(model)
    assert not predictor.rewritten
    rows = iris_and_wide_rows()
    indices, _ = predictor.predict(rows)
    assert [predictor.classes[i] for i in indices.tolist()] == model.predict(rows).labels


@pytest.mark.parametrize("model_bytes", [b"", b"\x08", b"\xff" * 12, b"\x3a\x05ab"])
def test_bytes_that_are_not_a_model_are_declined_not_raised(model_bytes: bytes) -> None:
    assert with_class_indices(model_bytes) is None


def names_written_last(model: bytes) -> bytes:
    """`model` with every attribute's name moved behind its values, on the wire (an
    onnx message would write it first again)."""

    def attribute(payload: bytes) -> bytes:
        fields = wire.decode(payload)
        return wire.encode(
            [f for f in fields if f.number != 1] + [f for f in fields if f.number == 1]
        )

    def within(number: int, edit: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        def edited(payload: bytes) -> bytes:
            fields = wire.decode(payload)
            return wire.encode(
                wire.bytes_field(number, edit(f.payload)) if f.number == number else f
                for f in fields
            )

        return edited

    moved = wire.edit_only(model, 7, within(1, within(5, attribute)))  # graph, node, attribute
    assert moved is not None
    return moved


def test_attributes_whose_name_is_not_written_first_are_read_in_full(fetched: Path) -> None:
    """Of the attributes other than the class names only the name is read, and only
    where it comes first, as serializers write it."""
    model_bytes = names_written_last((fetched / "model.onnx").read_bytes())
    indexed = with_class_indices(model_bytes)
    assert indexed is not None
    rows = iris_and_wide_rows()
    names, probabilities = run(model_bytes, rows)
    indices, indexed_probabilities = run(indexed.model, rows)
    assert np.asarray(indexed.classes, dtype=object)[indices].tolist() == names.tolist()
    assert np.array_equal(indexed_probabilities, probabilities)
