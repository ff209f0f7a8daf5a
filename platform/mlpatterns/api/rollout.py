"""`spec.rollout` and `status.rollout` of a ModelService: training-to-serving.

A rollout takes one version, the candidate, from no traffic to all of it in steps
(a shadow step copies every request to it while the stable version answers; a
weighted step gives it a share), analysing it every interval against thresholds.
More failed analyses in a row than `failureLimit` send all traffic back to the
stable version; passing every step promotes the candidate. The decisions are
`mlpatterns.rollout.decide`'s; these are the shapes a user writes and reads.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from mlpatterns.api.base import Strict

__all__ = [
    "PHASES",
    "TERMINAL",
    "AbTest",
    "Analysis",
    "AnalysisResult",
    "CheckResult",
    "Phase",
    "Rollout",
    "RolloutStatus",
    "Step",
    "Verdict",
    "check_rollout",
]

Phase = Literal["Progressing", "Paused", "Succeeded", "RolledBack", "Aborted"]
PHASES: tuple[Phase, ...] = ("Progressing", "Paused", "Succeeded", "RolledBack", "Aborted")
TERMINAL: frozenset[Phase] = frozenset({"Succeeded", "RolledBack", "Aborted"})
Verdict = Literal["Passed", "Failed", "Inconclusive"]


class Step(Strict):
    """One step: `shadow: true` (the candidate gets a copy of every request, answers
    still come from the stable version) or `weight` (its share of requests, percent).
    The step ends when an analysis in it has passed, the candidate has seen
    `requests` requests and `seconds` have gone by (each when given)."""

    shadow: bool = False
    weight: int | None = Field(default=None, ge=1, le=100)
    requests: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if self.shadow == (self.weight is not None):
            raise ValueError(
                "a rollout step is either {shadow: true} or {weight: W}; e.g. "
                "{shadow: true, requests: 200} or {weight: 10, seconds: 60}"
            )
        return self

    def describe(self) -> str:
        return "shadow" if self.shadow else f"weight {self.weight}"


class AbTest(Strict):
    """The online A/B outcome (from `/feedback`): the candidate's success rate may not
    be significantly lower than the stable version's (one-sided, level `alpha`)."""

    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_outcomes: int = Field(default=100, ge=1, alias="minOutcomes")


class Analysis(Strict):
    """Every `intervalSeconds`, the candidate's figures over the interval against these
    thresholds (a check left out is not made)."""

    interval_seconds: float = Field(default=30, gt=0, alias="intervalSeconds")
    failure_limit: int = Field(
        default=2,
        ge=0,
        alias="failureLimit",
        description="Failed analyses in a row tolerated; one more rolls back.",
    )
    min_requests: int = Field(
        default=20,
        ge=1,
        alias="minRequests",
        description="Fewer candidate requests in an interval make the analysis inconclusive.",
    )
    max_error_rate: float | None = Field(default=0.01, ge=0, le=1, alias="maxErrorRate")
    max_latency_p99_seconds: float | None = Field(default=None, gt=0, alias="maxLatencyP99Seconds")
    min_shadow_agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        alias="minShadowAgreement",
        description="In shadow steps: the share of rows where both versions predict alike.",
    )
    ab_test: AbTest | None = Field(default=None, alias="abTest")
    no_drift: bool = Field(
        default=True,
        alias="noDrift",
        description="Fail while the candidate's inputs drift from its training profile.",
    )


class Rollout(Strict):
    candidate: str = Field(description="The version rolled out; it must take no traffic yet.")
    steps: list[Step] = Field(min_length=1)
    analysis: Analysis = Field(default_factory=Analysis)
    promote_alias: str | None = Field(
        default=None,
        alias="promoteAlias",
        pattern=r"^[a-z][a-z0-9-]{0,62}$",
        description="On success, move this registry alias to the candidate's model.",
    )
    keep_previous_seconds: float = Field(
        default=600,
        ge=0,
        alias="keepPreviousSeconds",
        description="After success, how long `rollout abort` may still send traffic back.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Rollout:
        weights = [s.weight for s in self.steps if s.weight is not None]
        if any(b <= a for a, b in itertools.pairwise(weights)):
            raise ValueError(f"rollout.steps: weights must increase step by step; got {weights}")
        first_weighted = next((i for i, s in enumerate(self.steps) if not s.shadow), None)
        if first_weighted is not None and any(s.shadow for s in self.steps[first_weighted:]):
            raise ValueError("rollout.steps: shadow steps come before the weighted ones")
        return self


def check_rollout(
    rollout: Rollout, versions: Sequence[str], answering: Sequence[str], shadow: str | None
) -> None:
    """The rollout against the rest of the spec: `answering` are the versions the
    default route gives traffic, `shadow` the version traffic.shadow copies to."""
    if rollout.candidate not in versions:
        raise ValueError(
            f"rollout.candidate {rollout.candidate!r} is not in spec.versions {sorted(versions)}"
        )
    if rollout.candidate in answering or rollout.candidate == shadow:
        raise ValueError(
            f"rollout.candidate {rollout.candidate!r} already takes traffic in spec.traffic; "
            "the rollout gives it its share: leave it out of traffic.split and traffic.shadow"
        )
    if len(answering) != 1:
        raise ValueError(
            "a rollout moves traffic from one stable version to the candidate; the default "
            f"route gives traffic to {sorted(answering)}: make it one version"
        )


class CheckResult(Strict):
    name: str
    value: float | None = Field(default=None, description="What was measured (null: no data).")
    threshold: float
    passed: bool | None = None
    detail: str = ""


class AnalysisResult(Strict):
    time: str
    step: int
    verdict: Verdict
    requests: int = Field(description="Candidate requests (or shadow pairs) in the interval.")
    checks: list[CheckResult] = Field(default_factory=list)


class RolloutStatus(Strict):
    revision: str = Field(description="Which rollout this is (candidate and steps, hashed).")
    candidate: str
    stable: str
    phase: Phase
    step: int = 0
    step_started_at: str = Field(alias="stepStartedAt")
    step_requests: int = Field(default=0, alias="stepRequests")
    passed_analyses: int = Field(default=0, alias="passedAnalyses")
    failures: int = Field(default=0, description="Failed analyses in a row.")
    last_analysis: AnalysisResult | None = Field(default=None, alias="lastAnalysis")
    message: str = ""
    finished_at: str | None = Field(default=None, alias="finishedAt")
    previous_retired: bool = Field(
        default=False,
        alias="previousRetired",
        description="After success, keepPreviousSeconds passed: the previous version has no "
        "replicas, and abort no longer applies.",
    )
