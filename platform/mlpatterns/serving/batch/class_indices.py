"""A classifier graph whose label output gives each row's class index instead of its
class name. For whole columns (batch prediction) the names are the expensive part:
onnxruntime builds a string per row and Python an object per string, and a column
writer hashes them all again, where an index is one integer. The change is made to the
graph's classifier node itself (its `classlabels_strings` become `0..k-1`), so the
label is chosen by the same operator with the same arithmetic; only its encoding
differs. Models whose label does not come straight from such a node keep their names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlpatterns.serving.batch import protobuf_wire as wire
from mlpatterns.serving.model import LoadedModel, new_session

__all__ = [
    "ATTRIBUTE_TYPE_INTS",
    "ELEM_TYPE_INT64",
    "INTEGER_LABELS_ATTRIBUTE",
    "ML_DOMAIN",
    "MODEL_GRAPH",
    "ClassIndexPredictor",
    "IndexedGraph",
    "with_class_indices",
]

# the ai.onnx.ml classifiers, and the name each gives its integer class labels
INTEGER_LABELS_ATTRIBUTE = {
    "LinearClassifier": "classlabels_ints",
    "SVMClassifier": "classlabels_ints",
    "TreeEnsembleClassifier": "classlabels_int64s",
}
ML_DOMAIN = "ai.onnx.ml"

# field numbers and enum values from onnx-ml.proto
MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_OUTPUT = 1, 12
NODE_OUTPUT, NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 2, 4, 5, 7
ATTRIBUTE_NAME, ATTRIBUTE_INTS, ATTRIBUTE_STRINGS, ATTRIBUTE_TYPE = 1, 8, 9, 20
ATTRIBUTE_TYPE_INTS = 7
VALUE_NAME, VALUE_TYPE = 1, 2
TYPE_TENSOR, TENSOR_ELEM_TYPE = 1, 1
ELEM_TYPE_INT64 = 7


@dataclass(frozen=True)
class IndexedGraph:
    """The rewritten model, and the class name each index stands for."""

    model: bytes
    classes: list[str]


def with_class_indices(model: bytes, label_output: str = "label") -> IndexedGraph | None:
    """`model` (ONNX bytes) with `label_output` as int64 class indices, or None when that
    output is not produced directly by a classifier with string class labels. Every
    other byte of the model stays as it was."""
    try:
        fields = wire.decode(model)
        graph = wire.only(fields, MODEL_GRAPH)
        rewritten = None if graph is None else _graph_with_indices(graph.payload, label_output)
    except (wire.WireFormatError, UnicodeDecodeError):
        return None  # not for us to judge: loading the model as it is will say what is wrong
    if graph is None or rewritten is None:
        return None
    payload, classes = rewritten
    return IndexedGraph(wire.encode(wire.replaced(fields, graph, payload)), classes)


def _graph_with_indices(graph: bytes, label_output: str) -> tuple[bytes, list[str]] | None:
    fields = wire.decode(graph)
    outputs = [
        f
        for f in fields
        if f.number == GRAPH_OUTPUT
        and wire.last_text(wire.decode(f.payload), VALUE_NAME) == label_output
    ]
    producers = [
        f
        for f in fields
        if f.number == GRAPH_NODE and label_output in _node_outputs(wire.decode(f.payload))
    ]
    if len(outputs) != 1 or len(producers) != 1:
        return None
    node = _classifier_with_indices(producers[0].payload, label_output)
    output = wire.edit_only(outputs[0].payload, VALUE_TYPE, _tensor_type_as_int64)
    if node is None or output is None:
        return None
    node_payload, classes = node
    fields = wire.replaced(fields, producers[0], node_payload)
    return wire.encode(wire.replaced(fields, outputs[0], output)), classes


def _node_outputs(node: list[wire.Field]) -> list[str]:
    return [f.payload.decode() for f in node if f.number == NODE_OUTPUT]


def _classifier_with_indices(node: bytes, label_output: str) -> tuple[bytes, list[str]] | None:
    fields = wire.decode(node)
    integer_attribute = INTEGER_LABELS_ATTRIBUTE.get(wire.last_text(fields, NODE_OP_TYPE))
    if wire.last_text(fields, NODE_DOMAIN) != ML_DOMAIN or integer_attribute is None:
        return None
    # classifiers give the label as their first output
    if _node_outputs(fields)[:1] != [label_output]:
        return None
    names = [
        f
        for f in fields
        if f.number == NODE_ATTRIBUTE and _attribute_name(f.payload) == "classlabels_strings"
    ]
    if len(names) != 1:
        return None
    strings = wire.decode(names[0].payload)
    classes = [f.payload.decode() for f in strings if f.number == ATTRIBUTE_STRINGS]
    indices = wire.encode(
        [
            wire.bytes_field(ATTRIBUTE_NAME, integer_attribute),
            wire.varint_field(ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INTS),
            *(wire.varint_field(ATTRIBUTE_INTS, index) for index in range(len(classes))),
        ]
    )
    return wire.encode(wire.replaced(fields, names[0], indices)), classes


def _attribute_name(attribute: bytes) -> str:
    """An attribute's name without reading its values, which for a tree ensemble run to
    a field per tree node (read in Python, a large forest would take seconds).
    Serializers write fields in number order, so the name, field 1, comes first; an
    attribute that starts otherwise is read in full."""
    first = next(wire.fields_of(attribute), None)
    if first is not None and first.number == ATTRIBUTE_NAME:
        return first.payload.decode()
    return wire.last_text(wire.decode(attribute), ATTRIBUTE_NAME)


def _tensor_type_as_int64(type_proto: bytes) -> bytes | None:
    def as_int64(tensor: bytes) -> bytes:
        fields = [f for f in wire.decode(tensor) if f.number != TENSOR_ELEM_TYPE]
        return wire.encode([wire.varint_field(TENSOR_ELEM_TYPE, ELEM_TYPE_INT64), *fields])

    return wire.edit_only(type_proto, TYPE_TENSOR, as_int64)


class ClassIndexPredictor:
    """A model's predictions with each row's class as an index into `classes`: from the
    rewritten graph where `with_class_indices` applies, else from the names."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        indexed = with_class_indices(model.checked_bytes)
        self.rewritten = indexed is not None
        if indexed is None:
            self.classes = list(model.labels)
            self._session = model.session
        else:
            self.classes = indexed.classes
            self._session = new_session(indexed.model, model.threads)
        self._index_of = {name: index for index, name in enumerate(self.classes)}

    def predict(
        self, rows: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        labels, probabilities = self._session.run(
            ["label", "probabilities"], {self.model.input_name: rows}
        )
        if not self.rewritten:
            labels = np.fromiter(map(self._index_by_name, labels), np.int64, len(labels))
        return np.asarray(labels, dtype=np.int64), np.asarray(probabilities, dtype=np.float32)

    def _index_by_name(self, name: object) -> int:
        try:
            return self._index_of[str(name)]
        except KeyError:
            raise ValueError(
                f"{self.model.metadata.ref} predicted the class {name!r}, which the labels "
                f"in its metadata ({', '.join(self.classes)}) do not list"
            ) from None
