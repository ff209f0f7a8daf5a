"""A rollout's decisions, as pure functions of the ModelService, the status recorded
so far, what was observed over the last analysis interval and a person's command.
The operator and the embedded mode both call `advance` and both route by
`in_force`; neither decides anything of its own.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mlpatterns.api.modelservice import Destination, ModelService, Shadow, Traffic
from mlpatterns.api.rollout import (
    TERMINAL,
    Analysis,
    AnalysisResult,
    CheckResult,
    Rollout,
    RolloutStatus,
    Step,
)
from mlpatterns.proportions import two_proportion_z

__all__ = [
    "COMMANDS",
    "Command",
    "Observation",
    "Transition",
    "advance",
    "analyse",
    "analysis_due",
    "analysis_since",
    "in_force",
    "refusal",
    "revision",
    "stable_of",
    "start",
]

Command = Literal["promote", "abort", "pause", "resume"]
COMMANDS: tuple[Command, ...] = ("promote", "abort", "pause", "resume")


@dataclass(frozen=True)
class Observation:
    """The candidate over one analysis interval. In a shadow step `requests` counts the
    requests both versions answered (pairs), `errors` the copies that failed, and
    `rows`/`agreeing_rows` compare their predictions; in a weighted step they are the
    candidate's answered requests and its 5xx."""

    requests: int = 0
    errors: int = 0
    p99_seconds: float | None = None
    rows: int = 0
    agreeing_rows: int = 0
    candidate_outcomes: tuple[int, int] = (0, 0)  # successes, outcomes (from /feedback)
    stable_outcomes: tuple[int, int] = (0, 0)
    drifting: tuple[str, ...] = ()  # the candidate's drift signals that are over threshold


@dataclass(frozen=True)
class Transition:
    """A change worth telling: a Kubernetes Event in a cluster, a decision-log line
    on one machine."""

    reason: str
    message: str
    warning: bool = False


def _hashed(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def revision(service: ModelService, model: str = "") -> str:
    """Which rollout this is: `<spec>.<model>`, the candidate's version and the
    rollout hashed, then the model its reference names now (`model`, as resolved,
    when the runtime knows it). A new candidate, new steps or an alias of the
    candidate's that moved start a new rollout from its first step."""
    rollout = service.spec.rollout
    assert rollout is not None
    candidate = next(v for v in service.spec.versions if v.name == rollout.candidate)
    spec = candidate.model_dump_json(by_alias=True) + rollout.model_dump_json(by_alias=True)
    return f"{_hashed(spec, 12)}.{_hashed(model, 8)}"


def _same_spec(status: RolloutStatus, service: ModelService) -> bool:
    """Whether `status` is of this spec's rollout, whatever model it resolved to."""
    return status.revision.split(".")[0] == revision(service).split(".")[0]


def stable_of(service: ModelService) -> str:
    rollout = service.spec.rollout
    assert rollout is not None
    return next(
        d.version
        for d in service.spec.default_route()
        if d.weight > 0 and d.version != rollout.candidate
    )


def start(service: ModelService, now: datetime, model: str = "") -> RolloutStatus:
    rollout = service.spec.rollout
    assert rollout is not None
    return RolloutStatus(
        revision=revision(service, model),
        candidate=rollout.candidate,
        stable=stable_of(service),
        phase="Progressing",
        step=0,
        stepStartedAt=now.isoformat(),
        message=f"step 1 of {len(rollout.steps)}: {rollout.steps[0].describe()}",
    )


def _current(
    service: ModelService, status: RolloutStatus | None, now: datetime, model: str
) -> RolloutStatus:
    if status is None or status.revision != revision(service, model):
        return start(service, now, model)
    return status


def in_force(service: ModelService, status: RolloutStatus | None) -> ModelService:
    """The ModelService as it routes now: the traffic the rollout puts in force, and no
    rollout left to apply (what the gateway and the renderer execute). Before a status
    is recorded, and for a new candidate, that is the first step's traffic; a moved
    alias of the candidate's keeps the status' traffic until a new status says
    otherwise (the router does not resolve references)."""
    rollout = service.spec.rollout
    if rollout is None:
        return service
    if status is None or not _same_spec(status, service):
        status = start(service, datetime.fromtimestamp(0).astimezone())
    stable, candidate = status.stable, status.candidate
    traffic = service.spec.traffic
    shadow: Shadow | None = None
    versions = service.spec.versions
    if status.phase == "Succeeded":
        split = [Destination(version=candidate, weight=100)]
        if status.previous_retired:
            versions = [
                v.model_copy(update={"replicas": 0, "autoscaling": None}) if v.name == stable else v
                for v in versions
            ]
    elif status.phase in TERMINAL:
        split = [Destination(version=stable, weight=100)]
    else:
        step = rollout.steps[status.step]
        if step.shadow:
            split = [Destination(version=stable, weight=100)]
            shadow = Shadow(version=candidate, percent=100)
        else:
            weight = step.weight or 0
            split = [
                Destination(version=stable, weight=100 - weight),
                Destination(version=candidate, weight=weight),
            ]
    forced = Traffic(rules=traffic.rules, split=split, sticky=traffic.sticky, shadow=shadow)
    spec = service.spec.model_copy(
        update={"traffic": forced, "rollout": None, "versions": versions}
    )
    return service.model_copy(update={"spec": spec})


def analysis_since(status: RolloutStatus) -> datetime:
    """Where the next analysis's interval begins: the last analysis of this step, or
    the step's start."""
    last = status.last_analysis
    return datetime.fromisoformat(
        last.time if last is not None and last.step == status.step else status.step_started_at
    )


def analysis_due(status: RolloutStatus, analysis: Analysis, now: datetime) -> bool:
    if status.phase != "Progressing":
        return False
    return (now - analysis_since(status)).total_seconds() >= analysis.interval_seconds


def _worse_p_value(candidate: tuple[int, int], stable: tuple[int, int]) -> float:
    """One-sided p-value that the candidate's success rate is below the stable one's."""
    z = two_proportion_z(*candidate, *stable)
    return 1.0 if z is None else 0.5 * math.erfc(-z / math.sqrt(2))


def _bound(
    name: str, value: float | None, threshold: float, *, at_least: bool = False, detail: str = ""
) -> CheckResult:
    """`value` against an upper `threshold` (a lower one `at_least`); no value, no verdict."""
    passed = None if value is None else value >= threshold if at_least else value <= threshold
    return CheckResult(name=name, value=value, threshold=threshold, passed=passed, detail=detail)


def _checks(analysis: Analysis, step: Step, seen: Observation) -> list[CheckResult]:
    checks = []
    enough = seen.requests >= analysis.min_requests
    if analysis.max_error_rate is not None:
        attempts = seen.requests + seen.errors if step.shadow else seen.requests
        rate = seen.errors / attempts if attempts and (enough or seen.errors) else None
        checks.append(_bound("errorRate", rate, analysis.max_error_rate))
    if analysis.max_latency_p99_seconds is not None:
        p99 = seen.p99_seconds if enough else None
        checks.append(_bound("latencyP99Seconds", p99, analysis.max_latency_p99_seconds))
    if analysis.min_shadow_agreement is not None and step.shadow:
        agreement = seen.agreeing_rows / seen.rows if enough and seen.rows else None
        checks.append(
            _bound("shadowAgreement", agreement, analysis.min_shadow_agreement, at_least=True)
        )
    if analysis.ab_test is not None and not step.shadow:
        test = analysis.ab_test
        outcomes = min(seen.candidate_outcomes[1], seen.stable_outcomes[1])
        p_value = (
            _worse_p_value(seen.candidate_outcomes, seen.stable_outcomes)
            if outcomes >= test.min_outcomes
            else None
        )
        detail = f"{outcomes} outcomes per version; one-sided two-proportion z-test"
        checks.append(_bound("abNotWorse", p_value, test.alpha, at_least=True, detail=detail))
    if analysis.no_drift:
        drifting = float(len(seen.drifting))
        checks.append(_bound("drift", drifting, 0, detail=", ".join(seen.drifting)))
    return checks


def analyse(
    rollout: Rollout, status: RolloutStatus, seen: Observation, now: datetime
) -> AnalysisResult:
    """One analysis: Failed when a check fails; else Inconclusive when the candidate saw
    fewer than minRequests requests; else Passed. A check without data (A/B outcomes
    not yet in) neither passes nor fails."""
    step = rollout.steps[status.step]
    checks = _checks(rollout.analysis, step, seen)
    if any(c.passed is False for c in checks):
        verdict: Literal["Passed", "Failed", "Inconclusive"] = "Failed"
    elif seen.requests < rollout.analysis.min_requests:
        verdict = "Inconclusive"
    else:
        verdict = "Passed"
    return AnalysisResult(
        time=now.isoformat(),
        step=status.step,
        verdict=verdict,
        requests=seen.requests,
        checks=checks,
    )


def _failed(result: AnalysisResult) -> str:
    return "; ".join(
        f"{c.name} {c.value:.4g} against {c.threshold:g}{f' ({c.detail})' if c.detail else ''}"
        for c in result.checks
        if c.passed is False and c.value is not None
    )


def _step_done(step: Step, status: RolloutStatus, now: datetime) -> bool:
    elapsed = (now - datetime.fromisoformat(status.step_started_at)).total_seconds()
    return (
        status.passed_analyses > 0
        and (step.requests is None or status.step_requests >= step.requests)
        and (step.seconds is None or elapsed >= step.seconds)
    )


def _finish(status: RolloutStatus, phase: str, message: str, now: datetime) -> RolloutStatus:
    return status.model_copy(
        update={"phase": phase, "message": message, "finished_at": now.isoformat()}
    )


def _retiring(status: RolloutStatus, rollout: Rollout, now: datetime) -> bool:
    """Whether the previous version's time for a fast rollback just ran out."""
    if status.phase != "Succeeded" or status.previous_retired or status.finished_at is None:
        return False
    finished = datetime.fromisoformat(status.finished_at)
    return (now - finished).total_seconds() >= rollout.keep_previous_seconds


def refusal(status: RolloutStatus, command: Command) -> str | None:
    """Why `command` does not apply to a rollout in `status`'s phase (None: it does)."""
    allowed = {
        "pause": ("Progressing",),
        "resume": ("Paused",),
        "promote": ("Progressing", "Paused"),
        "abort": ("Progressing", "Paused", "Succeeded"),
    }[command]
    if command == "abort" and status.phase == "Succeeded" and status.previous_retired:
        return (
            f"{command} no longer applies: {status.stable} was retired after the promotion; "
            f"roll it out again as a candidate"
        )
    if status.phase in allowed:
        return None
    return f"{command} does not apply to a rollout that is {status.phase}"


def _command(
    status: RolloutStatus, command: Command, now: datetime
) -> tuple[RolloutStatus, list[Transition]]:
    refused = refusal(status, command)
    if refused is not None:
        return status, [Transition("Ignored", refused, True)]
    where = f"step {status.step + 1}"
    if command == "pause":
        changed = status.model_copy(update={"phase": "Paused", "message": "paused by hand"})
        return changed, [Transition("Paused", f"paused at {where}")]
    if command == "resume":
        changed = status.model_copy(update={"phase": "Progressing", "message": "resumed"})
        return changed, [Transition("Resumed", f"resumed at {where}")]
    if command == "promote":
        message = f"{status.candidate} promoted by hand at {where}"
        return _finish(status, "Succeeded", message, now), [Transition("Promoted", message)]
    message = f"aborted by hand: all traffic back to {status.stable}"
    return _finish(status, "Aborted", message, now), [Transition("Aborted", message, True)]


def advance(
    service: ModelService,
    status: RolloutStatus | None,
    now: datetime,
    *,
    observation: Observation | None = None,
    command: Command | None = None,
    model: str = "",
) -> tuple[RolloutStatus, list[Transition]]:
    """The next status and what happened on the way. `observation` is given when an
    analysis is due (`analysis_due`); `command` when a person asked for one; `model`
    is the candidate's model as resolved now (see `revision`)."""
    rollout = service.spec.rollout
    assert rollout is not None
    transitions: list[Transition] = []
    current = _current(service, status, now, model)
    if current is not status:
        transitions.append(
            Transition("Started", f"rolling out {current.candidate}: {current.message}")
        )
    if command is not None:
        current, told = _command(current, command, now)
        transitions += told
    if _retiring(current, rollout, now):
        current = current.model_copy(update={"previous_retired": True})
        transitions.append(
            Transition(
                "Retired",
                f"{current.stable} retired {rollout.keep_previous_seconds:g} s after the "
                "promotion: no replicas, and abort no longer applies",
            )
        )
    if current.phase != "Progressing" or observation is None:
        return current, transitions
    result = analyse(rollout, current, observation, now)
    passed = result.verdict == "Passed"
    current = current.model_copy(
        update={
            "last_analysis": result,
            "step_requests": current.step_requests + result.requests,
            "passed_analyses": current.passed_analyses + passed,
            "failures": current.failures + 1
            if result.verdict == "Failed"
            else 0
            if passed
            else current.failures,
        }
    )
    if result.verdict == "Failed":
        reason = _failed(result)
        if current.failures > rollout.analysis.failure_limit:
            message = f"rolled back to {current.stable} at step {current.step + 1}: {reason}"
            return _finish(current, "RolledBack", message, now), [
                *transitions,
                Transition("RolledBack", message, True),
            ]
        transitions.append(
            Transition(
                "AnalysisFailed",
                f"step {current.step + 1}: {reason} ({current.failures} of "
                f"{rollout.analysis.failure_limit} tolerated in a row)",
                True,
            )
        )
    step = rollout.steps[current.step]
    if not _step_done(step, current, now):
        return current, transitions
    if current.step + 1 == len(rollout.steps):
        message = f"{current.candidate} promoted after {len(rollout.steps)} steps"
        return _finish(current, "Succeeded", message, now), [
            *transitions,
            Transition("Promoted", message),
        ]
    following = current.step + 1
    message = f"step {following + 1} of {len(rollout.steps)}: {rollout.steps[following].describe()}"
    current = current.model_copy(
        update={
            "step": following,
            "step_started_at": now.isoformat(),
            "step_requests": 0,
            "passed_analyses": 0,
            "failures": 0,
            "message": message,
        }
    )
    return current, [*transitions, Transition("Advanced", message)]
