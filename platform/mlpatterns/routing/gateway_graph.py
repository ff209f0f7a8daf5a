"""The gateway's side of an inference graph: each step's call through the gateway's
own upstream pool of that version (with the request's id and the route header, so
Istio routes it to the version's subset too), and the graph's answer as the client
gets it: the combined prediction, or the failure that stopped it."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from mlpatterns.routing.graph import GRAPH_PATHS, Call, GraphAnswer, StepFailed, answer_body
from mlpatterns.routing.istio import ROUTE_HEADER
from mlpatterns.routing.messages import (
    Answer,
    Incoming,
    error_answer,
    request_head,
    upstream_target,
)
from mlpatterns.routing.upstream import UpstreamError, UpstreamPool, UpstreamTimeout

__all__ = ["GRAPH_VERSION", "graph_answer", "graph_call", "graph_refusal", "steps_header"]

GRAPH_VERSION = "graph"  # what the decision log and metrics name a graph's answer
_JSON = (b"content-type", b"application/json")


def graph_call(pools: Mapping[str, UpstreamPool], request_id: str) -> Call:
    """A step's call: `POST /predict` to the version's upstream, at most `timeout` s."""
    given = request_id.encode()

    async def call(version: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        pool = pools[version]
        origin = pool.origin
        headers = [_JSON, (b"x-request-id", given), (ROUTE_HEADER.encode(), version.encode())]
        target = upstream_target(origin.prefix, b"/predict", b"")
        head = request_head("POST", target, origin.host_header, headers, len(body))
        try:
            answer = await pool.request(head, body, timeout)
        except UpstreamTimeout:
            raise StepFailed(f"did not answer in {timeout:.3g} s", timeout=True) from None
        except UpstreamError as error:
            raise StepFailed(f"is unavailable: {error}", timeout=False) from None
        return answer.status, answer.body

    return call


def graph_refusal(request: Incoming, service: str) -> Answer | None:
    """The answer to a request a graph does not take (None: it takes it)."""
    if request.path not in GRAPH_PATHS:
        message = (
            f"{service} is an inference graph: it answers POST /predict and /predict/label "
            "(the simple API)"
        )
        return error_answer(404, message, "", "")
    if request.method != "POST":
        answer = error_answer(405, f"{request.path} takes POST", "", "")
        answer.headers.append((b"allow", b"POST"))
        return answer
    return None


def steps_header(answer: GraphAnswer) -> bytes:
    """`x-mlpatterns-graph`: each step's outcome and time, e.g. `a=ok:1.2ms,b=timeout`."""
    return ",".join(
        f"{s.version}={s.outcome}:{s.seconds * 1000:.1f}ms" for s in answer.steps
    ).encode()


def graph_answer(path: str, answer: GraphAnswer) -> Answer:
    if answer.error == "refused":  # a client's mistake, as the step said it
        return Answer(answer.status, [_JSON], answer.body)
    if answer.error:
        return error_answer(answer.status, answer.error, "", "")
    headers = [_JSON]
    if answer.defaulted:
        headers.append((b"x-mlpatterns-default", b"true"))
    return Answer(200, headers, orjson.dumps(answer_body(path, answer)))
