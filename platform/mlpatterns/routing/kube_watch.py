"""The gateway's routes straight from the Kubernetes API: a watch on one ConfigMap.

A ConfigMap mounted as a volume reaches a pod only when kubelet next syncs it (a
minute by default), so a traffic switch written with `kubectl patch` would take
that long. The gateway watches its routes ConfigMap instead, with the pod's own
ServiceAccount token, and applies a change as soon as the API server sends it; the
mounted file stays the source at start and the fallback if the API is unreachable.
The gateway's Role lets it get, list and watch that one ConfigMap and nothing else.

No Kubernetes client library: this is one HTTPS stream of JSON lines (httpx), and
the serving image carries none of the operator's dependencies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["ClusterAccess", "config_map_text", "watch_config_map"]

log = logging.getLogger("mlpatterns.gateway")

ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_EVENT_BYTES = 4 << 20  # a ConfigMap holds at most 1 MiB; JSON escaping may double it
WATCH_SECONDS = 300  # the API server ends each watch after this; it is then resumed
# a watch quiet for longer than the API server keeps it open is a dead connection
SILENCE_SECONDS = WATCH_SECONDS + 30


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API server is and how this pod proves who it is."""

    server: str  # https://host:port
    token_file: Path
    ca_file: Path
    namespace: str

    @classmethod
    def in_cluster(cls, account: Path = ACCOUNT) -> ClusterAccess:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host or not (account / "token").exists():
            raise RuntimeError(
                "not in a Kubernetes pod with a ServiceAccount token "
                "(KUBERNETES_SERVICE_HOST and the mounted token are needed)"
            )
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        namespace = (account / "namespace").read_text().strip()
        return cls(server, account / "token", account / "ca.crt", namespace)

    def headers(self) -> dict[str, str]:
        """Read the token on every connection: kubelet rotates it."""
        return {"Authorization": f"Bearer {self.token_file.read_text().strip()}"}


def config_map_text(event: dict[str, Any], name: str, key: str) -> tuple[str, bytes | None]:
    """(resourceVersion, the key's text) of a watch event; text None when it has none.

    An ERROR event (the API server's Status, e.g. 410 Gone for an expired version)
    raises, so the watch starts again from the current object.
    """
    kind = event.get("type")
    item = event.get("object") or {}
    if kind == "ERROR":
        raise RuntimeError(f"the watch ended: {item.get('message') or item}")
    meta = item.get("metadata") or {}
    version = str(meta.get("resourceVersion", ""))
    if kind not in ("ADDED", "MODIFIED") or meta.get("name") != name:
        return version, None
    text = (item.get("data") or {}).get(key)
    return version, None if text is None else text.encode()


async def watch_config_map(
    access: ClusterAccess,
    name: str,
    key: str,
    apply: Callable[[bytes], object],
    *,
    backoff: tuple[float, float] = (0.5, 15.0),
    silence: float = SILENCE_SECONDS,
) -> None:
    """Call `apply(text)` with the key's text now and on every change, until cancelled.

    A watch that sends nothing for `silence` seconds is taken for dead (a connection
    a network fault left open sends nothing, ever) and started again.
    """
    context = ssl.create_default_context(cafile=str(access.ca_file))
    url = f"{access.server}/api/v1/namespaces/{quote(access.namespace)}/configmaps"
    delay = backoff[0]
    version = ""
    async with httpx.AsyncClient(verify=context, timeout=httpx.Timeout(10, read=silence)) as http:
        while True:
            params = {
                "fieldSelector": f"metadata.name={name}",
                "watch": "true",
                "timeoutSeconds": str(WATCH_SECONDS),
            }
            if version:
                params["resourceVersion"] = version
            try:
                async with http.stream("GET", url, params=params, headers=access.headers()) as got:
                    if got.status_code != 200:
                        said = (await got.aread())[:300].decode(errors="replace")
                        raise RuntimeError(f"{got.status_code} from the API server: {said}")
                    delay = backoff[0]
                    async for line in _lines(got):
                        version, text = config_map_text(json.loads(line), name, key)
                        if text is not None:
                            apply(text)
            except Exception as error:  # any failure: keep the routes in force, retry
                version = ""
                log.warning(
                    "routes watch of configmap %s/%s: %s; the routes in force stay, "
                    "retrying in %.1fs",
                    access.namespace,
                    name,
                    str(error) or type(error).__name__,
                    delay,
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter)
                delay = min(delay * 2, backoff[1])


async def _lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """The stream's lines, each bounded: a longer one is not a ConfigMap event."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
        if len(buffer) > MAX_EVENT_BYTES:
            raise RuntimeError(f"a watch event longer than {MAX_EVENT_BYTES} bytes")
