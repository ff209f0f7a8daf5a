"""The gateway's routes watch against the real API server, with the rendered Role:
a change to its ConfigMap arrives at once, and its token reads nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mlpatterns.api.load import load_model_service
from mlpatterns.render import RenderOptions, render
from mlpatterns.routing.kube_watch import ClusterAccess, watch_config_map
from tests.cluster.conftest import repo_path
from tests.support.controlplane import ControlPlane
from tests.support.stalling_proxy import StallingProxy

pytestmark = pytest.mark.cluster


def gateway_access_objects(namespace: str) -> list[dict[str, object]]:
    service = load_model_service(repo_path("manifests/patterns/online-ab/modelservice.yaml"))
    objects = render(service, RenderOptions(namespace=namespace, router="gateway"))
    kinds = {"ServiceAccount", "Role", "RoleBinding", "ConfigMap"}
    return [o for o in objects if o["kind"] in kinds and "gateway" in json.dumps(o["metadata"])]


@contextlib.contextmanager
def watching(access: ClusterAccess, **options: float) -> Iterator[list[tuple[float, bytes]]]:
    """The routes watch running in a thread: what it applied, with when."""
    seen: list[tuple[float, bytes]] = []
    loop = asyncio.new_event_loop()
    task = loop.create_task(
        watch_config_map(
            access,
            "iris-ab-routes",
            "modelservice.yaml",
            lambda t: seen.append((time.monotonic(), t)),
            **options,
        )
    )

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        yield seen
    finally:
        loop.call_soon_threadsafe(task.cancel)
        runner.join(5)


def wait_for(done: Callable[[], bool], what: str, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while not done():
        assert time.monotonic() < deadline, f"{what} never arrived"
        time.sleep(0.01)


def _change_routes(control_plane: ControlPlane, namespace: str, text: str) -> None:
    control_plane.kubectl(
        "patch", "configmap", "iris-ab-routes", "-n", namespace, "--type=merge",
        "-p", json.dumps({"data": {"modelservice.yaml": text}}),
    )  # fmt: skip


def _gateway_access(control_plane: ControlPlane, namespace: str, folder: Path) -> ClusterAccess:
    """The gateway's objects applied; the access its ServiceAccount's token gives."""
    objects = gateway_access_objects(namespace)
    control_plane.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))
    token = folder / "token"
    token.write_text(control_plane.kubectl("create", "token", "iris-ab-gateway", "-n", namespace))
    return ClusterAccess(
        control_plane.server, token, control_plane.folder / "pki/ca.crt", namespace
    )


def test_a_routes_change_arrives_through_the_watch_and_nothing_else_is_readable(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    assert sorted(str(o["kind"]) for o in gateway_access_objects(namespace)) == [
        "ConfigMap",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    access = _gateway_access(control_plane, namespace, tmp_path)
    control_plane.kubectl("create", "configmap", "neighbour", "-n", namespace, "--from-literal=a=b")

    with watching(access) as seen:
        wait_for(lambda: bool(seen), "the current routes")
        assert b"name: iris-ab" in seen[0][1]
        patched = time.monotonic()
        _change_routes(control_plane, namespace, "changed: true\n")
        wait_for(lambda: len(seen) >= 2, "the changed routes")
        assert seen[-1][1] == b"changed: true\n"
        assert seen[-1][0] - patched < 2

    context = ssl.create_default_context(cafile=str(access.ca_file))
    with httpx.Client(verify=context, headers=access.headers()) as http:
        api = f"{control_plane.server}/api/v1/namespaces/{namespace}/configmaps"
        assert http.get(f"{api}/iris-ab-routes").status_code == 200
        assert http.get(f"{api}/neighbour").status_code == 403
        assert http.get(api).status_code == 403  # a list of all of them
        assert (
            http.get(f"{control_plane.server}/api/v1/namespaces/{namespace}/secrets").status_code
            == 403
        )


def test_a_watch_gone_silent_is_started_again_and_brings_the_change_it_missed(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    direct = _gateway_access(control_plane, namespace, tmp_path)
    with StallingProxy(("127.0.0.1", control_plane.ports["apiserver"])) as proxy:
        access = dataclasses.replace(direct, server=f"https://127.0.0.1:{proxy.port}")
        with watching(access, silence=1.0) as seen:
            wait_for(lambda: bool(seen), "the current routes")
            proxy.stall()  # the open watch carries nothing from now on, and never ends
            _change_routes(control_plane, namespace, "missed: true\n")
            wait_for(lambda: seen[-1][1] == b"missed: true\n", "the change made while stalled")
