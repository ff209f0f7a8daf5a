"""Real servers the integration tests start on loopback: MinIO (S3), Redis, Prometheus.

Each runs as a child process tied to the test process, in its own folder, and is
stopped by the fixture that started it.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import die_with_parent, free_port, http_ok, terminate, wait_until


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # host:port
    access_key: str
    secret_key: str
    log: Path


@contextmanager
def minio_server(binary: Path, folder: Path) -> Iterator[S3Server]:
    """A MinIO server on a free loopback port with fresh random credentials."""
    port, console = free_port(), free_port()
    server = S3Server(
        endpoint=f"127.0.0.1:{port}",
        access_key="mlp-" + secrets.token_hex(6),
        secret_key=secrets.token_urlsafe(24),
        log=folder / "minio.log",
    )
    env = {
        **os.environ,
        "MINIO_ROOT_USER": server.access_key,
        "MINIO_ROOT_PASSWORD": server.secret_key,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
    }
    folder.mkdir(parents=True, exist_ok=True)
    with server.log.open("ab") as sink:
        process = subprocess.Popen(
            [
                str(binary),
                "server",
                str(folder / "data"),
                "--quiet",
                "--address",
                server.endpoint,
                "--console-address",
                f"127.0.0.1:{console}",
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    try:
        wait_until(
            "minio", lambda: http_ok(f"http://{server.endpoint}/minio/health/live"), 60, server.log
        )
        yield server
    finally:
        terminate("minio", process.pid)


@contextmanager
def redis_server(
    folder: Path, *, port: int | None = None, persistent: bool = False
) -> Iterator[str]:
    """A real redis-server (Debian's package) on a loopback port (a free one unless
    given); yields its URL. `persistent`: every write in an append-only file, so a
    restart on the same folder and port keeps every job."""
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "redis.log"
    durability = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else []
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *durability,
                "--dir",
                str(folder),
                "--protected-mode",
                "yes",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    try:
        wait_until("redis", lambda: _answers_ping(port), 30, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        terminate("redis", process.pid)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def prometheus_server(
    folder: Path, targets: list[str], rules: Path, interval: str = "1s"
) -> Iterator[str]:
    """A real Prometheus (Debian's package) on a loopback port, scraping `targets`
    (host:port) and evaluating `rules` every `interval`; yields its URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: {interval}, evaluation_interval: {interval}}}\n"
        f"rule_files: [{rules}]\n"
        "scrape_configs:\n"
        "  - job_name: mlpatterns\n"
        f"    static_configs: [{{targets: [{', '.join(targets)}]}}]\n"
    )
    log = folder / "prometheus.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("prometheus", lambda: http_ok(f"{url}/-/ready"), 60, log)
        yield url
    finally:
        terminate("prometheus", process.pid)
