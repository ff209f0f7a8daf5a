"""Inference graphs: a ModelService's versions composed into one answer, executed by
the mlpatterns gateway for the simple API (`POST /predict`, `/predict/label`). Its
steps are versions served as the pattern says: model servers, or preprocess servers
each in front of its predictor (the preprocess-prediction pattern's pair).

- `sequence` (microservice vertical): the versions in turn, each given the client's
  request or the previous step's probabilities as its rows; the last one answers.
- `ensemble` (microservice horizontal): the versions at once, their answers combined
  by `mean` (of probabilities), `vote` (each model's label a vote; the answer's
  probabilities are the votes' shares) or `first` (the first answer wins).

A step that fails (a 5xx, no answer) or the graph's deadline passing follows
`onError`: `fail` (the graph answers 502 or 504, naming the step), `skip` (the step
is left out: a sequence passes the last answer on, an ensemble combines the rest) or
`default` (the graph answers `default`). A client's mistake (a 4xx) is answered as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field, model_validator

from mlpatterns.api.base import Strict

__all__ = ["GRAPH_PATTERNS", "DefaultAnswer", "Ensemble", "Graph", "Step", "check_graph"]

GRAPH_PATTERNS = ("synchronous", "web-single", "preprocess-prediction")


class Step(Strict):
    version: str
    input: Literal["request", "previous"] = Field(
        default="request",
        description="request: the client's rows; previous: the previous step's probabilities.",
    )


class Ensemble(Strict):
    versions: list[str] = Field(min_length=2, max_length=8)
    combine: Literal["mean", "vote", "first"] = "mean"


class DefaultAnswer(Strict):
    classes: list[str] = Field(min_length=1)
    probabilities: list[float] = Field(min_length=1, description="Each row's answer.")

    @model_validator(mode="after")
    def _aligned(self) -> DefaultAnswer:
        if len(self.classes) != len(self.probabilities):
            raise ValueError("graph.default needs one probability per class")
        return self


class Graph(Strict):
    sequence: list[Step] | None = Field(default=None, min_length=2, max_length=8)
    ensemble: Ensemble | None = None
    deadline_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        alias="deadlineSeconds",
        description="The whole graph's time; a step still running then is a failed step.",
    )
    on_error: Literal["fail", "skip", "default"] = Field(default="fail", alias="onError")
    default: DefaultAnswer | None = None

    @model_validator(mode="after")
    def _shape(self) -> Graph:
        if (self.sequence is None) == (self.ensemble is None):
            raise ValueError("graph needs exactly one of sequence (steps in turn) or ensemble")
        if self.sequence is not None and self.sequence[0].input == "previous":
            raise ValueError("graph.sequence[0] has no previous step: its input is the request")
        if (self.on_error == "default") != (self.default is not None):
            raise ValueError(
                "graph.onError default needs graph.default {classes, probabilities}, and "
                "graph.default is used by onError default only"
            )
        return self

    @property
    def versions(self) -> list[str]:
        if self.sequence is not None:
            return [step.version for step in self.sequence]
        assert self.ensemble is not None
        return list(self.ensemble.versions)


def check_graph(
    graph: Graph, *, pattern: str, versions: Mapping[str, bool], others: Sequence[str]
) -> None:
    """The graph's versions are known, active and distinct, its pattern answers at
    once, and no other traffic policy competes with it. `versions`: name -> active;
    `others`: the traffic fields given besides the graph."""
    named = graph.versions
    unknown = [name for name in named if name not in versions]
    if unknown:
        raise ValueError(
            f"graph names versions {unknown}, which are not in spec.versions {sorted(versions)}"
        )
    if len(set(named)) != len(named):
        raise ValueError(f"graph names a version twice: {named}")
    off = [name for name in named if not versions[name]]
    if off:
        raise ValueError(
            f"graph versions {off} are switched off (active: false); take them out of the "
            "graph instead"
        )
    if pattern not in GRAPH_PATTERNS:
        raise ValueError(
            f"graph needs pattern {', '.join(GRAPH_PATTERNS)} (its steps answer at once), "
            f"not {pattern}"
        )
    if others:
        raise ValueError(
            f"graph is the service's route: drop {', '.join(others)} (a graph's versions "
            "are its steps, not alternatives)"
        )
