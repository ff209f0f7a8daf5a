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

from mlpatterns.serving.model import LoadedModel, new_session

# the ai.onnx.ml classifiers, and the name each gives its integer class labels
INTEGER_LABELS_ATTRIBUTE = {
    "LinearClassifier": "classlabels_ints",
    "SVMClassifier": "classlabels_ints",
    "TreeEnsembleClassifier": "classlabels_int64s",
}
ML_DOMAIN = "ai.onnx.ml"


@dataclass(frozen=True)
class IndexedGraph:
    """The rewritten model, and the class name each index stands for."""

    model: bytes
    classes: list[str]


def with_class_indices(model: bytes, label_output: str = "label") -> IndexedGraph | None:
    """`model` (ONNX bytes) with `label_output` as int64 class indices, or None when that
    output is not produced directly by a classifier with string class labels."""
    import onnx  # only batch prediction needs it; servers do not pay its import

    graph = onnx.load_from_string(model)
    outputs = [o for o in graph.graph.output if o.name == label_output]
    producers = [n for n in graph.graph.node if label_output in n.output]
    if len(outputs) != 1 or len(producers) != 1:
        return None
    node = producers[0]
    integer_attribute = INTEGER_LABELS_ATTRIBUTE.get(node.op_type)
    names = [a for a in node.attribute if a.name == "classlabels_strings"]
    if node.domain != ML_DOMAIN or integer_attribute is None or len(names) != 1:
        return None
    if node.output[0] != label_output:  # classifiers give the label as their first output
        return None
    classes = [name.decode() for name in names[0].strings]
    node.attribute.remove(names[0])
    node.attribute.append(onnx.helper.make_attribute(integer_attribute, list(range(len(classes)))))
    outputs[0].type.tensor_type.elem_type = onnx.TensorProto.INT64
    return IndexedGraph(graph.SerializeToString(), classes)


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
