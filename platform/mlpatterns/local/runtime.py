"""The embedded mode's edges: pick ports, start the plan under a supervisor, record
where everything listens in `MLPATTERNS_HOME/run/<service>.json` (which `traffic
set|show` read), and stop it all cleanly."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpatterns.api.load import load_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.files import write_text_atomically
from mlpatterns.local.follow import ModelFollower
from mlpatterns.local.plan import Plan, plan
from mlpatterns.local.rollout import RolloutDriver, registry_promoter
from mlpatterns.local.supervisor import Supervisor
from mlpatterns.logstreams import place
from mlpatterns.registry.registry import Registry
from mlpatterns.settings import load_settings

__all__ = [
    "Embedded",
    "NotRunningError",
    "cli_command",
    "embedded",
    "free_port",
    "read_state",
    "state_path",
]

log = logging.getLogger("mlpatterns.local")


class NotRunningError(LookupError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_command() -> tuple[str, ...]:
    """How child processes run mlpatterns: the script beside this interpreter, if any."""
    script = Path(sys.executable).with_name("mlpatterns")
    if script.exists():
        return (str(script),)
    found = shutil.which("mlpatterns")
    return (found,) if found else (sys.executable, "-m", "mlpatterns")


def state_path(home: Path, service: str) -> Path:
    return home / "run" / f"{service}.json"


def read_state(home: Path, service: str) -> dict[str, Any]:
    path = state_path(home, service)
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        raise NotRunningError(
            f"no running ModelService {service!r} under {home} (no {path}); "
            "start it with `mlpatterns up -f FILE`"
        ) from None
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        raise NotRunningError(
            f"ModelService {service!r} was started by process {state.get('pid')}, "
            "which is gone; start it again with `mlpatterns up -f FILE`"
        ) from None
    return state


@dataclass
class Embedded:
    plan: Plan
    supervisor: Supervisor
    file: Path
    home: Path
    rollout: RolloutDriver | None = None
    follower: ModelFollower | None = None

    @property
    def gateway_url(self) -> str | None:
        return self.plan.gateway_url

    def write_state(self) -> None:
        path = state_path(self.home, self.plan.service)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "service": self.plan.service,
            "file": str(self.file.resolve()),
            "pid": os.getpid(),
            "gateway_url": self.plan.gateway_url,
            "upstreams": dict(self.plan.upstreams),
            "models": {
                name: model.describe()
                for name, model in (self.follower.served if self.follower else {}).items()
            },
            "processes": [
                {
                    "name": r.spec.name,
                    "pid": r.process.pid if r.process else None,
                    "log": str(r.log_path),
                }
                for r in self.supervisor.processes
            ],
        }
        # rewritten every 0.2 s: written in place, `traffic set` could read it empty; not
        # synced: after a crash of the machine the processes it names are gone too
        write_text_atomically(path, json.dumps(state, indent=2), durable=False)

    def supervise(self, stopping: threading.Event, every: float = 0.2) -> None:
        while not stopping.wait(every):
            self.supervisor.poll()
            self.write_state()  # pids change when a process is restarted
            for part in (self.rollout, self.follower):
                if part is None:
                    continue
                try:
                    part.tick()
                except Exception:  # the servers stay supervised; the next tick tries again
                    log.exception("%s failed; trying again", type(part).__name__)


def _driver(
    service: ModelService, file: Path, home: Path, the_plan: Plan, say: Callable[[str], None]
) -> RolloutDriver | None:
    """The rollout driver, when the service has a rollout and a gateway to steer."""
    if service.spec.rollout is None or the_plan.gateway_url is None:
        return None
    settings = load_settings(home=home)
    return RolloutDriver(
        file=file.resolve(),
        home=home,
        service=the_plan.service,
        gateway_url=the_plan.gateway_url,
        upstreams=the_plan.upstreams,
        logs=place(settings),
        say=say,
        promote=registry_promoter(Registry.from_settings(settings)),
    )


@contextmanager
def embedded(
    file: Path,
    home: Path,
    *,
    port: int,
    images: Mapping[str, Path] | None = None,
    say: Callable[[str], None] = print,
    timeout: float = 120.0,
    registry_poll: float = 10.0,
) -> Iterator[Embedded]:
    """Run the ModelService in `file` as local processes for the `with` block."""
    service = load_model_service(file)
    home = home.resolve()
    the_plan = plan(
        service,
        file=file.resolve(),
        home=home,
        gateway_port=port,
        next_port=free_port,
        cli=cli_command(),
        images=images,
    )
    logs = home / "logs" / "processes" / the_plan.service
    env = {"MLPATTERNS_HOME": str(home)}
    supervisor = Supervisor(the_plan.processes, logs, env=env, say=say)
    registry = Registry.from_settings(load_settings(home=home))
    follower = ModelFollower(service, registry, supervisor, registry_poll, say)
    driver = _driver(service, file, home, the_plan, say)
    if driver is not None:
        driver.model_of = follower.describe
        driver.ready = supervisor.ready
        driver.retire = supervisor.retire
    running = Embedded(the_plan, supervisor, file, home, driver, follower)
    try:
        supervisor.start(timeout)
        running.write_state()
        yield running
    finally:
        supervisor.stop()
        state_path(home, the_plan.service).unlink(missing_ok=True)
