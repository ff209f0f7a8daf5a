"""The model types training offers, each a preprocessing stage and an estimator.

Preprocessing (imputation and scaling) is its own pipeline step so that it can be
exported as its own ONNX graph and served apart (the preprocess-prediction pattern).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = ["ESTIMATORS", "SEEDED", "UNSCALED", "ModelTypeError", "build"]


def _svc(**params: Any) -> SVC:
    return SVC(probability=True, **params)  # the ONNX model must output probabilities


ESTIMATORS: dict[str, Callable[..., ClassifierMixin]] = {
    "logreg": lambda **p: LogisticRegression(max_iter=2000, **p),
    "svc": _svc,
    "random_forest": RandomForestClassifier,
    "gradient_boosting": GradientBoostingClassifier,
}

# Seeded by default so that a rerun with the same data and parameters gives the
# same model (and the registry returns the same version).
SEEDED = {"svc", "random_forest", "gradient_boosting"}

# Trees split on thresholds, so scaling changes nothing for them except exposing
# float32 rounding at the thresholds: ONNX would then disagree with scikit-learn.
UNSCALED = {"random_forest", "gradient_boosting"}


class ModelTypeError(ValueError):
    pass


def build(model_type: str, parameters: dict[str, Any], seed: int) -> Pipeline:
    """An unfitted pipeline; unknown types and parameters fail with what is allowed."""
    if model_type not in ESTIMATORS:
        raise ModelTypeError(
            f"unknown model type {model_type!r}; choose one of {', '.join(ESTIMATORS)}"
        )
    params = dict(parameters)
    if model_type in SEEDED:
        params.setdefault("random_state", seed)
    try:
        estimator = ESTIMATORS[model_type](**params)
    except TypeError as error:
        raise ModelTypeError(f"invalid parameters for {model_type}: {error}") from None
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if model_type not in UNSCALED:
        steps.append(("scale", StandardScaler()))
    return Pipeline([*steps, ("model", estimator)])
