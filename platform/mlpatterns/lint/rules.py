"""The catalog's anti-patterns as lint rules, and what one finding says.

Each rule names the anti-pattern, the catalog pattern that avoids it and how to fix
it in general; a finding says where (file and line) and what, here, is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["RULES", "Finding", "Rule", "RuleId"]

RuleId = Literal[
    "online-bigsize",
    "all-in-one",
    "offline-only",
    "only-me",
    "nobody-knows",
    "training-code-in-serving",
    "too-many-pipes",
    "no-logging",
]


@dataclass(frozen=True)
class Rule:
    id: RuleId
    family: str  # the catalog's family: Training, Serving, QA, Operation
    summary: str  # the anti-pattern, in one sentence
    pattern: str  # the catalog pattern that avoids it
    fix: str  # how, in general


@dataclass(frozen=True)
class Finding:
    rule: RuleId
    path: str
    line: int  # 1-based; 1 when a whole file is meant
    message: str  # what is wrong here
    fix: str  # how to fix it here

    @property
    def pattern(self) -> str:
        return RULES[self.rule].pattern


RULES: dict[RuleId, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "online-bigsize",
            "Serving",
            "A model too slow for its online service level: every request waits for it.",
            "Asynchronous, Multiple-stage prediction or Prediction cache",
            "serve it asynchronously, answer first with a lighter model, or train a smaller one",
        ),
        Rule(
            "all-in-one",
            "Serving",
            "Unrelated models in one server: they scale, fail and release together.",
            "Microservice horizontal / vertical (one ModelService per model)",
            "give each model its own ModelService; compose them in a graph when one request "
            "needs several",
        ),
        Rule(
            "offline-only",
            "QA",
            "A model released on offline metrics alone, with no shadow or A/B evidence.",
            "Shadow A/B test, Online A/B test or Training-to-serving",
            "add traffic.shadow or a weighted split, or a spec.rollout that judges the new "
            "version on live traffic before it takes it all",
        ),
        Rule(
            "only-me",
            "Training",
            "A model trained from a private, unreproducible setup.",
            "Pipeline training and Data/model versioning",
            "train from a committed checkout (or a pipeline run), so the version records its code",
        ),
        Rule(
            "nobody-knows",
            "Operation",
            "A model in production that nobody can explain: no owner or description.",
            "Data/model versioning",
            "annotate the ModelService with mlpatterns.io/owner and mlpatterns.io/description",
        ),
        Rule(
            "training-code-in-serving",
            "Training",
            "Training libraries or code shipped in a serving image or dependency set.",
            "Model-in-image / Model load (the serving image carries the serving extra only)",
            "install only what serving runs (mlpatterns[serving]: ONNX, no training "
            "libraries) and keep training in its own image",
        ),
        Rule(
            "too-many-pipes",
            "Training",
            "A pipeline spread over too many tools and hand-offs to follow or rerun.",
            "Pipeline training",
            "run the steps in fewer images and read data from fewer sources, passing "
            "artifacts between steps",
        ),
        Rule(
            "no-logging",
            "Operation",
            "Predictions not recorded: no monitoring, no comparison, no audit.",
            "Prediction log",
            "set spec.logging.predictions: true",
        ),
    )
}
