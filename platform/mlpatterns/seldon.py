"""A registry model under Seldon Core's own Python wrapper, as a Seldon user deploys a
custom model:

    seldon-core-microservice mlpatterns.seldon.Model --service-type MODEL \\
        --parameters '[{"name": "model_folder", "value": "/models/v1", "type": "STRING"}]'

`model_folder` holds what `mlpatterns fetch-model` wrote: the model's ONNX file and its
metadata. `load` (run by the wrapper in each worker) checks the file's digest against
the metadata and refuses a model that is not the registered one. The answer is the
class probabilities, one column per label (Seldon names the columns with
`class_names`), as Seldon's scikit-learn server answers `predict_proba`; the tags name
the model, its version and digest. A request the model cannot take gets Seldon's 400
with a message that says what it expects.

This runs in the `seldon` extra's environment (seldon-core 1.17.1, numpy 1): it
imports nothing of mlpatterns but the model as a server holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from seldon_core.flask_utils import SeldonMicroserviceException

from mlpatterns.registry.metadata import ModelMetadata
from mlpatterns.serving.model import FLOAT32_MAX, MAX_ROWS, METADATA_FILE, LoadedModel

__all__ = ["Model", "checked_features"]


def checked_features(features: Any, width: int) -> npt.NDArray[np.float32]:
    """`features` as float32 rows of `width` numbers, or the reason they are not."""
    if isinstance(features, (str, bytes)):
        raise SeldonMicroserviceException(
            f"this model takes data.ndarray or data.tensor, rows of {width} numbers; "
            "strData, binData and jsonData are not models' inputs"
        )
    try:
        array = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError):
        raise SeldonMicroserviceException(
            f"data must be rows of {width} numbers, with no text or missing values"
        ) from None
    if array.ndim != 2 or array.shape[1] != width or array.shape[0] == 0:
        raise SeldonMicroserviceException(
            f"data must be rows of {width} numbers (shape [rows, {width}]), "
            f"got shape {list(array.shape)}"
        )
    if array.shape[0] > MAX_ROWS:
        raise SeldonMicroserviceException(
            f"data has {array.shape[0]} rows; send at most {MAX_ROWS} at once", status_code=413
        )
    if not np.isfinite(array).all() or (np.abs(array) > FLOAT32_MAX).any():
        raise SeldonMicroserviceException(
            "every value must be a finite number within float32's range"
        )
    return array.astype(np.float32)


class Model:
    """Seldon's user model interface (`SeldonComponent`) over a registry model."""

    def __init__(self, model_folder: str = "/mnt/models", threads: int = 1) -> None:
        self.model_folder = Path(model_folder)
        self.threads = int(threads)
        self.model: LoadedModel | None = None

    def load(self) -> None:
        self.model = LoadedModel(self.model_folder, threads=self.threads)

    def _loaded(self) -> LoadedModel:
        if self.model is None:
            self.load()
        assert self.model is not None
        return self.model

    def predict(self, features: Any, feature_names: Any = None, **_: Any) -> npt.NDArray[Any]:
        model = self._loaded()
        prediction = model.predict(checked_features(features, model.n_features))
        if not prediction.finite:
            raise SeldonMicroserviceException(
                "the model's answer for these rows is not finite; the inputs are "
                "likely far outside the training data",
                status_code=422,
            )
        return np.asarray(prediction.probabilities, dtype=np.float32)

    def class_names(self) -> list[str]:
        return self._loaded().labels

    def tags(self) -> dict[str, str]:
        model = self._loaded()
        return {"model": model.name, "version": model.version, "sha256": model.sha256}

    def health_status(self) -> str:
        self._loaded()
        return "ready"

    def init_metadata(self) -> dict[str, Any]:
        """Seldon's model metadata, read from the registry's record of the model."""
        metadata = ModelMetadata.model_validate_json(
            (self.model_folder / METADATA_FILE).read_bytes()
        )
        width = len(metadata.feature_names)
        return {
            "name": metadata.name,
            "versions": [metadata.version],
            "platform": "onnxruntime",
            "inputs": [
                {
                    "messagetype": "ndarray",
                    "schema": {"names": metadata.feature_names, "shape": [width]},
                }
            ],
            "outputs": [
                {
                    "messagetype": "ndarray",
                    "schema": {"names": metadata.labels, "shape": [len(metadata.labels)]},
                }
            ],
            "custom": {"sha256": metadata.sha256},
        }
