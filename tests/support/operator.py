"""The operator as a local process against the test control plane, authenticated as
the platform chart's ServiceAccount (a token from the TokenRequest API), so a test
proves the chart's RBAC is enough, and not admin's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane
from tests.support.processes import die_with_parent

MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "mlpatterns"  # the platform chart's ServiceAccount for release "mlpatterns"


def service_account_kubeconfig(
    control_plane: ControlPlane, namespace: str, account: str, path: Path
) -> Path:
    token = control_plane.kubectl(
        "create", "token", account, "-n", namespace, "--duration", "2h"
    ).strip()
    return control_plane.write_kubeconfig(path, account, {"token": token})


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_operator(
    kubeconfig: Path, namespace: str, log: Path, *extra: str, env: dict[str, str] | None = None
) -> Operator:
    handle = log.open("ab")
    process = subprocess.Popen(
        [MLPATTERNS, "operator", "run", "--namespace", namespace, *extra],
        env={**os.environ, **(env or {}), "KUBECONFIG": str(kubeconfig)},
        stdout=handle,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    return Operator(process, log)


def get_json(control_plane: ControlPlane, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(control_plane.kubectl("get", *args, "-o", "json"))
    return found


def condition(resource: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in (resource.get("status") or {}).get("conditions", []):
        if item["type"] == kind:
            return dict(item)
    return {}


def wait_for(what: str, check: Callable[[], bool], timeout: float, operator: Operator) -> None:
    """Poll `check` (bounded); on timeout fail with the operator's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if operator.process.poll() is not None:
            raise AssertionError(
                f"the operator exited while waiting for {what}:\n{operator.output()[-4000:]}"
            )
        time.sleep(0.3)
    raise AssertionError(
        f"timed out waiting for {what}; operator log:\n{operator.output()[-4000:]}"
    )


def install_platform(
    control_plane: ControlPlane,
    tool_env: dict[str, str],
    namespace: str,
    folder: Path,
    *operator_args: str,
    env: dict[str, str] | None = None,
) -> tuple[Path, Operator]:
    """The platform chart installed with helm into a new `namespace`, and the operator
    started with its ServiceAccount's credentials: the kubeconfig and the operator."""
    control_plane.kubectl("create", "namespace", namespace)
    subprocess.run(
        ["helm", "install", "mlpatterns", str(REPO / "charts" / "mlpatterns"), "-n", namespace,
         "--wait", "--timeout", "120s"],
        env=tool_env, check=True, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    kubeconfig = service_account_kubeconfig(
        control_plane, namespace, ACCOUNT, folder / "operator.kubeconfig"
    )
    log = folder / "operator.log"
    return kubeconfig, start_operator(kubeconfig, namespace, log, *operator_args, env=env)
