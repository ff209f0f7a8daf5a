"""What a training run's user chooses, checked without importing scikit-learn, so
that the CLI refuses a mistake before any work: the model types, the metrics and
the evaluation gate."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["METRICS", "MODEL_TYPES", "SEARCH_METRICS", "Gate"]

MODEL_TYPES = ("logreg", "svc", "random_forest", "gradient_boosting")  # models.ESTIMATORS
SEARCH_METRICS = ("accuracy", "f1_macro", "log_loss")  # search.SCORERS: what trials score
METRICS = ("accuracy", "f1_macro", "log_loss", "roc_auc")  # what evaluation measures
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_GATE = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Gate:
    """An evaluation gate such as `accuracy>=0.9`."""

    metric: str
    comparison: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Gate:
        match = _GATE.match(text)
        if not match:
            raise ValueError(
                f"invalid gate {text!r}: write <metric><op><value>, e.g. accuracy>=0.9 "
                "(op is one of >=, >, <=, <)"
            )
        metric, comparison, value = match.groups()
        if metric not in METRICS:
            raise ValueError(
                f"invalid gate {text!r}: no metric {metric!r}; gates can name "
                f"{', '.join(METRICS)} (roc_auc when every class is in the test split)"
            )
        return cls(metric, comparison, float(value))

    def __str__(self) -> str:
        return f"{self.metric}{self.comparison}{self.threshold:g}"

    def judge(self, metrics: dict[str, float]) -> tuple[bool, str]:
        """Whether the metrics pass, and a sentence saying why."""
        if self.metric not in metrics:
            return False, f"gate {self} names {self.metric!r}; the run measured {sorted(metrics)}"
        value = metrics[self.metric]
        passed = _COMPARISONS[self.comparison](value, self.threshold)
        verdict = "passes" if passed else "fails"
        return passed, f"{self.metric}={value:.4f} {verdict} the gate {self}"
