"""Parameter-based serving's threshold: a binary model's positive class is answered
only when its probability reaches the version's cut-off, changed without retraining.

The gateway asks the model server for probabilities (`/predict`) and decides the
labels here. Pure functions over the simple API's JSON bodies and the answers that
carry them.
"""

from __future__ import annotations

from typing import Any

import orjson

from mlpatterns.routing.messages import Answer

__all__ = [
    "LABEL_PATH",
    "PROBABILITIES_PATH",
    "applied",
    "applies",
    "argmax_labels",
    "labels_at",
    "rewrite",
    "upstream_path",
]

LABEL_PATH = "/predict/label"
PROBABILITIES_PATH = "/predict"


def upstream_path(path: str) -> str:
    """Where to ask: label requests need the probabilities behind the labels."""
    return PROBABILITIES_PATH if path == LABEL_PATH else path


def applies(path: str) -> bool:
    return path in (LABEL_PATH, PROBABILITIES_PATH)


def labels_at(answer: dict[str, Any], threshold: float) -> list[str] | None:
    """The labels of a `/predict` answer at `threshold`; None when the answer is not
    a binary model's (the threshold then does not apply and the model's own argmax
    labels stand)."""
    classes = answer.get("classes")
    rows = answer.get("probabilities")
    if not isinstance(classes, list) or len(classes) != 2 or not isinstance(rows, list):
        return None
    negative, positive = str(classes[0]), str(classes[1])
    labels = []
    for row in rows:
        if not isinstance(row, list) or len(row) != 2:
            return None
        labels.append(positive if float(row[1]) >= threshold else negative)
    return labels


def argmax_labels(answer: dict[str, Any]) -> list[str]:
    classes = [str(c) for c in answer.get("classes", [])]
    return [classes[max(range(len(row)), key=row.__getitem__)] for row in answer["probabilities"]]


def rewrite(path: str, answer: dict[str, Any], threshold: float) -> tuple[dict[str, Any], bool]:
    """The body to answer `path` with, and whether the threshold was applied."""
    labels = labels_at(answer, threshold)
    applied = labels is not None
    if labels is None:
        labels = argmax_labels(answer)
    if path == LABEL_PATH:
        return {"labels": labels}, applied
    return {**answer, "labels": labels, "threshold": threshold if applied else None}, applied


def applied(answer: Answer, path: str, threshold: float) -> Answer:
    """The model server's `answer` with the threshold applied to its labels (marked in
    `x-mlpatterns-threshold`); unchanged unless it is a 200 with probabilities."""
    if answer.status != 200:
        return answer
    try:
        parsed = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return answer
    if not isinstance(parsed, dict) or "probabilities" not in parsed:
        return answer
    body, changed = rewrite(path, parsed, threshold)
    headers = [(k, v) for k, v in answer.headers if k != b"content-type"]
    headers.append((b"content-type", b"application/json"))
    marked = f"{threshold:g}".encode() if changed else b"not-binary"
    headers.append((b"x-mlpatterns-threshold", marked))
    return Answer(200, headers, orjson.dumps(body), answer.upstream_seconds)
