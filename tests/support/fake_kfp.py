"""A small HTTP server speaking the part of the Kubeflow Pipelines v2beta1 REST API that
`mlpatterns pipeline submit|schedule` uses. A real KFP backend (Argo, MySQL, the API
server) cannot run on the project's machines, so the client's calls are checked
against this instead: it records every request and answers as KFP does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class FakeKfp:
    url: str
    requests: list[Recorded] = field(default_factory=list)

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [r.body or {} for r in self.requests if r.method == "POST" and r.path == path]


@contextmanager
def fake_kfp_server() -> Iterator[FakeKfp]:
    experiments: dict[str, dict[str, Any]] = {}
    state = FakeKfp(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            return

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _record(self) -> Recorded:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            recorded = Recorded(
                self.command, path, dict(self.headers), json.loads(raw) if raw else None
            )
            state.requests.append(recorded)
            return recorded

        def do_GET(self) -> None:
            recorded = self._record()
            if recorded.path == "/apis/v2beta1/healthz":
                self._answer(200, {"multi_user": False})
            elif recorded.path == "/apis/v2beta1/experiments":
                self._answer(200, {"experiments": list(experiments.values())})
            else:
                self._answer(404, {"error": f"no route {recorded.path}"})

        def do_POST(self) -> None:
            recorded = self._record()
            body = recorded.body or {}
            if recorded.path == "/apis/v2beta1/experiments":
                experiment = {"experiment_id": f"exp-{len(experiments) + 1}", **body}
                experiments[experiment["experiment_id"]] = experiment
                self._answer(200, experiment)
            elif recorded.path == "/apis/v2beta1/runs":
                self._answer(200, {"run_id": "run-1", "state": "PENDING", **body})
            elif recorded.path == "/apis/v2beta1/recurringruns":
                self._answer(200, {"recurring_run_id": "rr-1", "status": "ENABLED", **body})
            else:
                self._answer(404, {"error": f"no route {recorded.path}"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
