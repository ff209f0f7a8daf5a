"""A deliberately faulty upstream for the gateway's fault tests: answers 500, or
fails the first tries of each request id, or is slow. A stand-in, used only for
faults a real model server cannot be made to show on demand (answering 500s,
failing exactly once); slowness and crashes are shown with real servers
(SIGSTOP, SIGKILL)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    status: int = 200
    fail_first: int = 0  # tries of each request id answered 500 before a 200
    delay: float = 0.0
    tries: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def faulty_upstream(behaviour: Behaviour) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            request_id = self.headers.get("x-request-id", "")
            with behaviour.lock:
                behaviour.tries[request_id] += 1
                tries = behaviour.tries[request_id]
            time.sleep(behaviour.delay)
            status = 500 if tries <= behaviour.fail_first else behaviour.status
            body = json.dumps(
                {"probabilities": [[0.1, 0.9]], "classes": ["no", "yes"], "tries": tries}
            ).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
