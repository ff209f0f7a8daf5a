"""What the attack tests need: an upstream that records what reaches it, raw HTTP on a
socket (what an ordinary client refuses to send), and a process's resident memory.

All traffic goes to loopback; every loop is bounded in bytes and time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Recorder:
    """A real HTTP server on loopback that answers 200 `{}` and keeps each request."""

    url: str
    port: int
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def targets(self) -> list[str]:
        return [line for line, _, _ in self.requests]


@contextmanager
def recording_server() -> Iterator[Recorder]:
    requests: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            requests.append((self.requestline, headers, body))
            reply = b'{"probabilities": [[0.9, 0.1]], "classes": ["a", "b"]}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Recorder(f"http://127.0.0.1:{port}", port, requests)
    finally:
        server.shutdown()
        server.server_close()


def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are and read the answer until the server closes or `timeout`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_answer(sock, timeout)


def read_answer(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
        if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
            break
    return b"".join(chunks)


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer; 0 when there was none."""
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (the gateway's compiled data
    plane is one), from /proc."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue  # gone meanwhile
        if status.parent.name == str(pid) or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    if total == 0:
        raise AssertionError(f"no VmRSS for {pid}")
    return total


def stream_chunked(port: int, head: bytes, total: int, chunk: int = 1 << 20) -> tuple[bytes, int]:
    """POST a chunked body of up to `total` bytes, stopping when the server answers or
    closes; returns the answer and how many body bytes were sent (bounded by `total`)."""
    sent = 0
    block = b"x" * chunk
    frame = f"{chunk:x}\r\n".encode() + block + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        deadline = time.monotonic() + 60
        try:
            while sent < total and time.monotonic() < deadline:
                sock.sendall(frame)
                sent += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_answer(sock, 10), sent


def slowloris_seconds(port: int, limit: float = 10) -> float:
    """Dribble a request's headers one byte every 0.5 s until the server closes the
    connection (at most `limit` seconds); how long it stayed open."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\n")
        while time.monotonic() - started < limit:
            try:
                sock.sendall(b"x")
                time.sleep(0.5)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
    raise AssertionError(f"the connection stayed open for {limit:g} s")


def slow_body_answer(port: int) -> bytes:
    """Send the headers of a 100-byte body, then one byte, and wait for the server."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        return sock.recv(4096)
