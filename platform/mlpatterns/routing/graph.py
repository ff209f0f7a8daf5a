"""Inference graphs executed: a sequence's steps in turn, an ensemble's at once, each
step one call to a version's simple API (`POST /predict`), within the graph's
deadline; the answers combined (`mean`, `vote`, `first`), and a failed or late step
handled as the graph's `onError` says. `call` is the caller's: the gateway passes
one that uses its upstream pools, so a graph only reaches the versions of its
route table. The combinations are plain functions of the steps' answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from mlpatterns.api.graph import DefaultAnswer, Graph

__all__ = [
    "GRAPH_PATHS",
    "Call",
    "GraphAnswer",
    "StepAnswer",
    "StepFailed",
    "answer_body",
    "mean",
    "run_graph",
    "vote",
]

GRAPH_PATHS = ("/predict", "/predict/label")
Outcome = Literal["ok", "refused", "error", "timeout"]
Probabilities = list[list[float]]


class StepFailed(Exception):
    """A step's call that got no answer: `timeout` says whether it ran out of time."""

    def __init__(self, message: str, *, timeout: bool) -> None:
        super().__init__(message)
        self.timeout = timeout


# a version and the body to send it -> (status, body), in at most `timeout` seconds:
# else StepFailed (timeout=True)
Call = Callable[[str, bytes, float], Awaitable[tuple[int, bytes]]]


@dataclass(frozen=True)
class StepAnswer:
    version: str
    outcome: Outcome
    seconds: float
    status: int = 0
    body: bytes = b""
    classes: list[str] = field(default_factory=list)
    probabilities: Probabilities = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class GraphAnswer:
    status: int
    classes: list[str]
    probabilities: Probabilities
    steps: list[StepAnswer]
    answered_by: list[str]  # the versions whose answers made this one
    error: str = ""  # set: the graph failed (status 502, 504) or a step refused (4xx)
    body: bytes = b""  # a refusing step's own answer, passed on
    defaulted: bool = False


def _parsed(version: str, status: int, body: bytes, seconds: float) -> StepAnswer:
    if 400 <= status < 500:
        return StepAnswer(version, "refused", seconds, status, body)
    if status != 200:
        return StepAnswer(version, "error", seconds, status, error=f"answered {status}")
    try:
        answer = orjson.loads(body)
        classes, probabilities = answer["classes"], answer["probabilities"]
        if not (isinstance(classes, list) and isinstance(probabilities, list)):
            raise TypeError("classes and probabilities must be lists")
    except (orjson.JSONDecodeError, KeyError, TypeError) as error:
        return StepAnswer(
            version, "error", seconds, status, error=f"answered no prediction: {error}"
        )
    return StepAnswer(version, "ok", seconds, status, classes=classes, probabilities=probabilities)


async def _step(call: Call, version: str, body: bytes, timeout: float) -> StepAnswer:
    started = time.perf_counter()
    if timeout <= 0:
        return StepAnswer(version, "timeout", 0.0, error="no time left in the graph's deadline")
    try:  # the call keeps to `timeout` itself: no timer task per step
        status, answer = await call(version, body, timeout)
    except StepFailed as failure:
        outcome: Outcome = "timeout" if failure.timeout else "error"
        return StepAnswer(version, outcome, time.perf_counter() - started, error=str(failure))
    return _parsed(version, status, answer, time.perf_counter() - started)


def mean(answers: Sequence[StepAnswer]) -> Probabilities:
    """Each row's probabilities averaged over the answers (same classes, same rows)."""
    count = len(answers)
    rows = zip(*(a.probabilities for a in answers), strict=True)
    return [[sum(values) / count for values in zip(*row, strict=True)] for row in rows]


def vote(answers: Sequence[StepAnswer]) -> Probabilities:
    """Each model's most probable class a vote; a row's answer is each class's share of
    the votes (the most voted class is the most probable)."""
    width = len(answers[0].classes)
    shares = []
    for row in zip(*(a.probabilities for a in answers), strict=True):
        counts = [0.0] * width
        for probabilities in row:
            counts[max(range(width), key=probabilities.__getitem__)] += 1
        shares.append([n / len(row) for n in counts])
    return shares


def _rows(body: bytes) -> int:
    try:
        data = orjson.loads(body)["data"]
        return len(data) if isinstance(data, list) and data else 1
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return 1


def _failed(graph: Graph, steps: list[StepAnswer], failure: StepAnswer, body: bytes) -> GraphAnswer:
    if graph.on_error == "default":
        default: DefaultAnswer = graph.default  # type: ignore[assignment]  # validated
        rows = [list(default.probabilities)] * _rows(body)
        return GraphAnswer(200, list(default.classes), rows, steps, [], defaulted=True)
    status = 504 if failure.outcome == "timeout" else 502
    return GraphAnswer(status, [], [], steps, [], error=f"step {failure.version} {failure.error}")


def _refused(steps: list[StepAnswer], refusal: StepAnswer) -> GraphAnswer:
    return GraphAnswer(refusal.status, [], [], steps, [], error="refused", body=refusal.body)


async def run_graph(graph: Graph, body: bytes, call: Call) -> GraphAnswer:
    """The graph's answer to the simple-API request `body` (its rows as sent)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + graph.deadline_seconds
    if graph.sequence is not None:
        return await _sequence(graph, body, call, lambda: deadline - loop.time())
    return await _ensemble(graph, body, call, lambda: deadline - loop.time())


async def _sequence(
    graph: Graph, body: bytes, call: Call, left: Callable[[], float]
) -> GraphAnswer:
    steps: list[StepAnswer] = []
    last: StepAnswer | None = None
    assert graph.sequence is not None
    for step in graph.sequence:
        sent = body
        if step.input == "previous" and last is not None:
            sent = orjson.dumps({"data": last.probabilities})
        answer = await _step(call, step.version, sent, left())
        steps.append(answer)
        if answer.outcome == "refused":
            return _refused(steps, answer)
        if answer.outcome != "ok":
            if graph.on_error != "skip":
                return _failed(graph, steps, answer, body)
            continue
        last = answer
    if last is None:  # every step was skipped
        return _failed(graph, steps, steps[-1], body)
    return GraphAnswer(200, last.classes, last.probabilities, steps, [last.version])


async def _ensemble(
    graph: Graph, body: bytes, call: Call, left: Callable[[], float]
) -> GraphAnswer:
    ensemble = graph.ensemble
    assert ensemble is not None
    timeout = left()
    tasks = [asyncio.ensure_future(_step(call, v, body, timeout)) for v in ensemble.versions]
    if ensemble.combine == "first":
        steps = []
        for done in asyncio.as_completed(tasks):
            answer = await done
            steps.append(answer)
            if answer.outcome in ("ok", "refused"):
                break
        for task in tasks:
            task.cancel()
        answers = [a for a in steps if a.outcome == "ok"]
    else:
        steps = list(await asyncio.gather(*tasks))
        answers = [a for a in steps if a.outcome == "ok"]
    refusal = next((a for a in steps if a.outcome == "refused"), None)
    if refusal is not None:
        return _refused(steps, refusal)
    failures = [a for a in steps if a.outcome not in ("ok", "refused")]
    if failures and (graph.on_error != "skip" or not answers):
        return _failed(graph, steps, failures[0], body)
    first = answers[0]
    if any(
        a.classes != first.classes or len(a.probabilities) != len(first.probabilities)
        for a in answers
    ):
        disagreement = StepAnswer(answers[-1].version, "error", 0.0, error="answered other classes")
        return _failed(graph, steps, disagreement, body)
    combined = vote(answers) if ensemble.combine == "vote" else mean(answers)
    return GraphAnswer(200, answers[0].classes, combined, steps, [a.version for a in answers])


def answer_body(path: str, answer: GraphAnswer) -> dict[str, Any]:
    """The client's answer, as the path asks: probabilities and classes, or labels."""
    if path == "/predict/label":
        labels = [
            answer.classes[max(range(len(row)), key=row.__getitem__)]
            for row in answer.probabilities
        ]
        return {"labels": labels}
    return {"probabilities": answer.probabilities, "classes": answer.classes}
