"""Splitting, metrics and the training-feature profile (the gate is in `choices`)."""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
from sklearn import metrics as sk_metrics
from sklearn.model_selection import train_test_split

from mlpatterns.registry.metadata import FeatureProfile, Histogram, Profile, Split

__all__ = [
    "HISTOGRAM_BINS",
    "QUANTILES",
    "classification_metrics",
    "profile",
    "split_rows",
]

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 10


def _rows_digest(indices: npt.NDArray[np.int64]) -> str:
    return hashlib.sha256(np.sort(indices).astype("<i8").tobytes()).hexdigest()


def split_rows(
    labels: npt.NDArray[np.str_], split: Split
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Split]:
    """Train and test row indices, and the split with their digests recorded."""
    indices = np.arange(len(labels), dtype=np.int64)
    train, test = train_test_split(
        indices,
        test_size=split.test_ratio,
        random_state=split.seed,
        stratify=labels if split.method == "stratified" else None,
    )
    recorded = split.model_copy(
        update={"train_rows_sha256": _rows_digest(train), "test_rows_sha256": _rows_digest(test)}
    )
    return np.sort(train), np.sort(test), recorded


def classification_metrics(
    true_labels: npt.NDArray[np.str_],
    probabilities: npt.NDArray[np.floating],
    classes: list[str],
) -> dict[str, float]:
    """Accuracy, macro F1, log loss and one-vs-rest ROC AUC from predicted probabilities."""
    predicted = np.asarray(classes)[np.argmax(probabilities, axis=1)]
    result = {
        "accuracy": float(sk_metrics.accuracy_score(true_labels, predicted)),
        "f1_macro": float(sk_metrics.f1_score(true_labels, predicted, average="macro")),
        "log_loss": float(sk_metrics.log_loss(true_labels, probabilities, labels=classes)),
    }
    if len(set(true_labels)) == len(classes):
        scores = probabilities[:, 1] if len(classes) == 2 else probabilities
        result["roc_auc"] = float(
            sk_metrics.roc_auc_score(true_labels, scores, multi_class="ovr", labels=classes)
        )
    return result


def profile(
    features: npt.NDArray[np.float64], names: list[str], labels: npt.NDArray[np.str_]
) -> Profile:
    """Per-feature summary and histogram of the training rows: the drift reference."""
    profiles = []
    for column, name in zip(features.T, names, strict=True):
        present = column[~np.isnan(column)]
        counts, edges = np.histogram(present, bins=HISTOGRAM_BINS)
        profiles.append(
            FeatureProfile(
                name=name,
                count=int(present.size),
                missing=int(column.size - present.size),
                mean=float(present.mean()),
                std=float(present.std()),
                minimum=float(present.min()),
                maximum=float(present.max()),
                quantiles={f"{q:g}": float(np.quantile(present, q)) for q in QUANTILES},
                histogram=Histogram(edges=edges.tolist(), counts=counts.tolist()),
            )
        )
    values, counts = np.unique(labels, return_counts=True)
    frequencies = {str(v): float(c / labels.size) for v, c in zip(values, counts, strict=True)}
    return Profile(rows=int(features.shape[0]), features=profiles, class_frequencies=frequencies)
