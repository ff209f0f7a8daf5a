"""The gateway's process: its data plane (`dataplane.py`) routes every path
(`Gateway.route`) except
`POST /feedback`, which records an outcome for a request id (the A/B report's
input; one outcome per request id, a second one is refused), and the gateway's own
endpoints under `/-/`:

- `GET /-/routes`: the route table in force;
- `POST /-/reload`: read the ModelService again now (what `traffic set` calls); only
  from loopback, or with `Authorization: Bearer <MLPATTERNS_GATEWAY_TOKEN>`;
- `GET /-/openapi.json`: these endpoints as an OpenAPI document;
- `GET /-/health` (and which data plane forwards: `python` or `compiled`), and
  `GET /metrics` (also `/-/metrics`): the gateway's own metrics;
  each model server's are scraped from it directly.

These few are a Starlette app, called as ASGI with the request already read; the
routed requests never go through it.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
import uvloop
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from mlpatterns import web
from mlpatterns.logstreams import RecordLog
from mlpatterns.logstreams.streams import timestamp
from mlpatterns.process import calm_garbage_collector
from mlpatterns.routing.compiled import CompiledPlane, CompiledPlaneError, serve_behind
from mlpatterns.routing.dataplane import DataPlane, serve
from mlpatterns.routing.gateway import CLIENT_HEADER, Gateway, log
from mlpatterns.routing.messages import Answer, Incoming
from mlpatterns.routing.openapi import gateway_openapi

__all__ = [
    "MAX_FEEDBACK_BYTES",
    "FeedbackError",
    "FeedbackSeen",
    "call_asgi",
    "create_control_app",
    "may_reload",
    "own_path",
    "parse_feedback",
    "run_gateway",
]

MAX_FEEDBACK_BYTES = 16 << 10


class FeedbackError(ValueError):
    pass


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def parse_feedback(raw: bytes) -> tuple[str, bool | float | str]:
    """`{"request_id": "...", "outcome": true | 0.0 | "setosa"}` -> (id, outcome)."""
    if len(raw) > MAX_FEEDBACK_BYTES:
        raise FeedbackError(f"the body is over {MAX_FEEDBACK_BYTES} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise FeedbackError(f"the body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise FeedbackError('send an object: {"request_id": "...", "outcome": true}')
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not web.is_valid_request_id(request_id):
        raise FeedbackError(
            "request_id must be the x-request-id of the answered request "
            f"(1 to {web.MAX_REQUEST_ID} of A-Z, a-z, 0-9, '.', '_', ':', '-')"
        )
    outcome = body.get("outcome")
    if isinstance(outcome, bool) or (isinstance(outcome, str) and 0 < len(outcome) <= 200):
        return request_id, outcome
    if isinstance(outcome, (int, float)):
        return request_id, float(outcome)
    raise FeedbackError(
        "outcome must be true/false (converted or not), a number, or the true label as a string"
    )


def may_reload(client: tuple[str, int] | None, authorization: str | None, token: str) -> bool:
    """A reload comes from this machine (loopback), or carries the gateway's token."""
    if token and authorization is not None:
        return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class FeedbackSeen:
    """Request ids that already have an outcome (the latest `limit`, oldest out)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def first(self, request_id: str) -> bool:
        """True the first time an id is given, False after."""
        if request_id in self._ids:
            return False
        self._ids[request_id] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return True


def create_control_app(
    gateway: Gateway,
    reload: Callable[[], bool] | None = None,
    *,
    feedback_log: RecordLog | None = None,
    reload_token: str = "",
    front: CompiledPlane | None = None,
) -> ASGIApp:
    """The gateway's own endpoints; `reload()` re-reads the ModelService when it
    changed (`POST /-/reload`); `front`, the compiled data plane in front of the
    gateway, if any, holds the counts and recent versions of what it answered."""
    seen = FeedbackSeen()

    async def routes(request: Request) -> Response:
        return _json(gateway.table.describe())

    async def reload_now(request: Request) -> Response:
        if not may_reload(
            request.scope.get("client"), request.headers.get("authorization"), reload_token
        ):
            message = "reload is for this machine, or needs Authorization: Bearer <gateway token>"
            return _json({"error": message}, 403)
        if reload is None:
            message = (
                "this gateway polls no ModelService file (it has none, or follows its "
                "routes ConfigMap through the Kubernetes API, which needs no reload)"
            )
            return _json({"error": message}, 409)
        changed = reload()
        return _json({"reloaded": changed, "service": gateway.table.service})

    async def feedback(request: Request) -> Response:
        if feedback_log is None:
            return _json({"error": "this gateway records no feedback"}, 404)
        try:
            raw = await web.read_body(request.scope, request.receive, MAX_FEEDBACK_BYTES)
            request_id, outcome = parse_feedback(raw)
        except web.BodyTooLarge as error:
            return _json({"error": str(error)}, 413)
        except FeedbackError as error:
            return _json({"error": str(error)}, 400)
        if not seen.first(request_id):
            return _json({"error": f"request {request_id} already has an outcome"}, 409)
        version = await front.version_of(request_id) if front else gateway.version_of(request_id)
        feedback_log.submit(
            {
                "request_id": request_id,
                "service": gateway.table.service,
                "version": version,
                "outcome": outcome,
                "timestamp": timestamp(),
            }
        )
        return _json({"recorded": True, "version": version}, 202)

    async def health(request: Request) -> Response:
        return _json({"status": "ok", "data_plane": "python" if front is None else "compiled"})

    async def openapi(request: Request) -> Response:
        return _json(gateway_openapi(gateway.table.service))

    async def metrics(request: Request) -> Response:
        if front is not None:
            try:
                await front.refresh_metrics()
            except (CompiledPlaneError, TimeoutError) as error:
                log.warning("the compiled data plane's counts are missing: %s", error)
        return Response(
            generate_latest(gateway.metrics.registry), media_type="text/plain; version=0.0.4"
        )

    return Starlette(
        routes=[
            Route("/-/routes", routes, methods=["GET"]),
            Route("/-/reload", reload_now, methods=["POST"]),
            Route("/-/health", health, methods=["GET"]),
            Route("/-/openapi.json", openapi, methods=["GET"]),
            Route("/-/metrics", metrics, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/feedback", feedback, methods=["POST"]),
        ]
    )


async def call_asgi(app: ASGIApp, request: Incoming) -> Answer:
    """`app`'s answer to a request already read whole."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "http",
        "method": request.method,
        "path": request.path,
        "raw_path": request.raw_path,
        "query_string": request.query,
        "root_path": "",
        "headers": request.raw_headers,
        "client": request.client,
        "server": None,
    }
    given = False
    answer = Answer(500, [], b"")
    parts: list[bytes] = []

    async def receive() -> Message:
        nonlocal given
        if given:
            return {"type": "http.disconnect"}
        given = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = [
                (name.lower(), value)
                for name, value in message.get("headers", [])
                if name.lower() != b"content-length"  # the data plane writes its own
            ]
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, send)
    answer.body = b"".join(parts)
    return answer


def run_gateway(
    gateway: Gateway,
    control: ASGIApp,
    host: str,
    port: int,
    limits: web.WebLimits,
    *,
    reload: Callable[[], bool] | None = None,
    reload_every: float = 1.0,
    feedback_log: RecordLog | None = None,
    watchers: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    front: CompiledPlane | None = None,
) -> None:
    """Serve until stopped (see `dataplane.serve`), or behind `front`, the compiled
    data plane (see `compiled.serve_behind`). `reload()` is polled every
    `reload_every` seconds; each of `watchers` runs for the server's life."""

    async def poll() -> None:
        assert reload is not None
        while True:
            await asyncio.sleep(reload_every)
            reload()

    async def stop() -> None:
        await gateway.close()
        if feedback_log is not None:
            feedback_log.close()

    async def call_control(request: Incoming) -> Answer:
        return await call_asgi(control, request)

    plane = DataPlane(
        gateway.route,
        limits,
        own=(own_path, call_control),
        on_client_gone=gateway.client_gone,
        client_header=CLIENT_HEADER if front is not None else None,
    )
    background = [*watchers, poll] if reload is not None else list(watchers)
    calm_garbage_collector()
    if front is None:
        uvloop.run(serve(plane, host, port, background=background, on_stop=stop))
        return
    code = uvloop.run(serve_behind(front, plane, host, port, background=background, on_stop=stop))
    if code != 0:
        raise SystemExit(code)


def own_path(path: str) -> bool:
    """The gateway's own endpoints; every other path is routed."""
    return path.startswith("/-/") or path in ("/feedback", "/metrics")
