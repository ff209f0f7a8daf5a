"""The gateway's routes watch against the real API server, with the rendered Role:
a change to its ConfigMap arrives at once, and its token reads nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest

from mlpatterns.api.load import load_model_service
from mlpatterns.render import RenderOptions, render
from mlpatterns.routing.kube_watch import ClusterAccess, watch_config_map
from tests.cluster.conftest import repo_path
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.cluster


def gateway_access_objects(namespace: str) -> list[dict[str, object]]:
    service = load_model_service(repo_path("manifests/patterns/online-ab/modelservice.yaml"))
    objects = render(service, RenderOptions(namespace=namespace, router="gateway"))
    kinds = {"ServiceAccount", "Role", "RoleBinding", "ConfigMap"}
    return [o for o in objects if o["kind"] in kinds and "gateway" in json.dumps(o["metadata"])]


def test_a_routes_change_arrives_through_the_watch_and_nothing_else_is_readable(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    objects = gateway_access_objects(namespace)
    assert sorted(str(o["kind"]) for o in objects) == [
        "ConfigMap",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    control_plane.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))
    control_plane.kubectl("create", "configmap", "neighbour", "-n", namespace, "--from-literal=a=b")
    token = tmp_path / "token"
    token.write_text(control_plane.kubectl("create", "token", "iris-ab-gateway", "-n", namespace))
    access = ClusterAccess(
        control_plane.server, token, control_plane.folder / "pki/ca.crt", namespace
    )

    seen: list[tuple[float, bytes]] = []
    loop = asyncio.new_event_loop()
    task = loop.create_task(
        watch_config_map(
            access,
            "iris-ab-routes",
            "modelservice.yaml",
            lambda t: seen.append((time.monotonic(), t)),
        )
    )

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen, "the current routes never arrived"
        assert b"name: iris-ab" in seen[0][1]
        patched = time.monotonic()
        control_plane.kubectl(
            "patch", "configmap", "iris-ab-routes", "-n", namespace, "--type=merge",
            "-p", json.dumps({"data": {"modelservice.yaml": "changed: true\n"}}),
        )  # fmt: skip
        while len(seen) < 2 and time.monotonic() < patched + 10:
            time.sleep(0.01)
        assert seen[-1][1] == b"changed: true\n"
        assert seen[-1][0] - patched < 2
    finally:
        loop.call_soon_threadsafe(task.cancel)
        runner.join(5)

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
