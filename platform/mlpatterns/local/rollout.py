"""The embedded mode's rollout driver: the edges around `mlpatterns.rollout.decide`.

Each tick it reads the ModelService file, the recorded status
(`MLPATTERNS_HOME/run/<service>.rollout.json`, which survives a restart of `up`)
and a pending command (`<service>.rollout-command`, written by `mlpatterns rollout
pause|resume|promote|abort`); when an analysis is due it reads the gateway's and
the candidate's `/metrics` and the prediction and feedback logs; then it writes the
new status, tells the gateway to reload (the gateway routes by the status), appends
every transition to the decision log (`logs/rollouts/<service>.jsonl`) and, when
the candidate is promoted, moves the registry alias the rollout names.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from mlpatterns.api.load import ModelServiceError, load_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.api.rollout import RolloutStatus
from mlpatterns.files import read_if_present, write_atomically
from mlpatterns.logstreams import Place, Stream
from mlpatterns.registry.promotion import promote
from mlpatterns.registry.references import RegistryRef, parse_ref
from mlpatterns.registry.registry import Registry
from mlpatterns.rollout.decide import (
    COMMANDS,
    Command,
    Observation,
    Transition,
    advance,
    analysis_due,
)
from mlpatterns.rollout.observe import (
    GatewayReading,
    bucket_quantile,
    drifting,
    gateway_reading,
    observation,
)
from mlpatterns.rollout.status import dump_status, parse_status

__all__ = [
    "RolloutDriver",
    "command_path",
    "decision_log_path",
    "registry_promoter",
    "request_command",
    "status_path",
]

log = logging.getLogger("mlpatterns.rollout")


def status_path(home: Path, service: str) -> Path:
    return home / "run" / f"{service}.rollout.json"


def command_path(home: Path, service: str) -> Path:
    return home / "run" / f"{service}.rollout-command"


def decision_log_path(home: Path, service: str) -> Path:
    return home / "logs" / "rollouts" / f"{service}.jsonl"


def request_command(home: Path, service: str, command: Command) -> Path:
    """Leave `command` for the driver of `service`, which takes it on its next tick."""
    path = command_path(home, service)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda sink: sink.write(command.encode()))
    return path


def _read_command(path: Path) -> Command | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    for command in COMMANDS:
        if text == command:
            return command
    log.warning("ignored rollout command %r (not one of %s)", text, ", ".join(COMMANDS))
    path.unlink(missing_ok=True)
    return None


@dataclass
class RolloutDriver:
    file: Path
    home: Path
    service: str
    gateway_url: str
    upstreams: Mapping[str, str]  # version -> its server's URL
    logs: Place
    say: Callable[[str], None] = print
    promote: Callable[[ModelService, RolloutStatus], str] | None = None
    model_of: Callable[[str], str] = field(default=lambda version: "")  # resolved, see revision
    ready: Callable[[str], bool] = field(default=lambda version: True)  # its server answers
    retire: Callable[[str], object] = field(default=lambda version: None)  # stop its servers
    _baseline: GatewayReading | None = field(default=None, repr=False)
    _parsed: tuple[tuple[int, int, int], ModelService | None] | None = field(
        default=None, repr=False
    )

    @property
    def status_file(self) -> Path:
        return status_path(self.home, self.service)

    def tick(self, now: datetime | None = None) -> RolloutStatus | None:
        """One round: take a command, analyse when due, record and apply the result."""
        now = now or datetime.now(UTC)
        service = self._service()
        if service is None or service.spec.rollout is None:
            return None
        recorded = self._recorded()
        pending = command_path(self.home, self.service)
        command = _read_command(pending)
        model = self.model_of(service.spec.rollout.candidate)
        status, told = advance(service, recorded, now, command=command, model=model)
        if not self.ready(status.candidate):
            self._baseline = None  # (re)starting: its downtime is not the candidate's figures
        elif self._baseline is None:
            self._baseline = self._read_gateway()  # where the next analysis counts from
        elif analysis_due(status, service.spec.rollout.analysis, now):
            seen = self._observe(service, status)
            if seen is not None:
                status, analysed = advance(service, status, now, observation=seen, model=model)
                told += analysed
        if status != recorded or told:
            self._record(service, recorded, status, told, now)
        if command is not None:
            pending.unlink(missing_ok=True)  # taken: its effect is recorded
        return status

    def _service(self) -> ModelService | None:
        """The ModelService file, parsed again only when it changed (an invalid one is
        reported once per change, and the rollout keeps its state)."""
        try:
            stat = self.file.stat()
        except OSError as error:
            log.warning("rollout: kept the current state; cannot read %s: %s", self.file, error)
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._parsed is None or self._parsed[0] != key:
            try:
                self._parsed = (key, load_model_service(self.file))
            except ModelServiceError as error:
                log.warning("rollout: kept the current state; %s", error)
                self._parsed = (key, None)
        return self._parsed[1]

    def _recorded(self) -> RolloutStatus | None:
        return parse_status(read_if_present(self.status_file))

    def _record(
        self,
        service: ModelService,
        before: RolloutStatus | None,
        status: RolloutStatus,
        told: list[Transition],
        now: datetime,
    ) -> None:
        if status.phase == "Succeeded" and (before is None or before.phase != "Succeeded"):
            told.append(self._promote_alias(service, status))
        path = decision_log_path(self.home, self.service)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as decisions:  # first: a status on disk has its lines logged
            for transition in told:
                line = {
                    "time": now.isoformat(),
                    "service": self.service,
                    "revision": status.revision,
                    "phase": status.phase,
                    "step": status.step,
                    "reason": transition.reason,
                    "message": transition.message,
                    "analysis": status.last_analysis.model_dump(mode="json", by_alias=True)
                    if status.last_analysis
                    else None,
                }
                decisions.write(json.dumps(line) + "\n")
                self.say(f"rollout {self.service}: {transition.reason}: {transition.message}")
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.status_file, lambda sink: sink.write(dump_status(status)))
        if before is None or before.phase != status.phase or before.step != status.step:
            self._reload_gateway()
        if status.previous_retired and not (before and before.previous_retired):
            self.retire(status.stable)

    def _promote_alias(self, service: ModelService, status: RolloutStatus) -> Transition:
        alias = service.spec.rollout.promote_alias if service.spec.rollout else None
        if alias is None or self.promote is None:
            return Transition("Kept", f"{status.stable} kept without traffic")
        try:
            return Transition("AliasMoved", self.promote(service, status))
        except Exception as error:  # the rollout stands; the alias is the person's to move
            log.exception("rollout %s: could not move alias %s", self.service, alias)
            return Transition("AliasNotMoved", f"could not move {alias}: {error}", warning=True)

    def _reload_gateway(self) -> None:
        try:
            httpx.post(f"{self.gateway_url}/-/reload", timeout=5)
        except httpx.HTTPError:
            log.warning("rollout %s: the gateway did not take the reload", self.service)

    def _get(self, url: str, timeout: float = 5.0) -> str | None:
        try:
            response = httpx.get(url, timeout=timeout)
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.warning("rollout %s: cannot read %s: %s", self.service, url, error)
            return None
        return response.text

    def _read_gateway(self) -> GatewayReading | None:
        text = self._get(f"{self.gateway_url}/-/metrics")
        return None if text is None else gateway_reading(text, self.service)

    def _observe(self, service: ModelService, status: RolloutStatus) -> Observation | None:
        """The candidate since the last analysis (None: the gateway could not be read,
        and the analysis waits for the next tick)."""
        reading = self._read_gateway()
        if reading is None:
            return None
        interval, self._baseline = reading.since(self._baseline), reading
        counts = interval.of(status.candidate)
        step_start = datetime.fromisoformat(status.step_started_at)
        # a candidate that hangs is what a rollout is for: it must not stall the analysis
        metrics = self._get(f"{self.upstreams[status.candidate]}/metrics", timeout=1.0) or ""
        assert service.spec.rollout is not None
        return observation(
            service.spec.rollout.steps[status.step],
            status,
            counts,
            bucket_quantile(0.99, counts.buckets),
            self.logs.read(Stream.PREDICTIONS, self.service, step_start).items,
            self.logs.read(Stream.FEEDBACK, self.service, step_start).items,
            drifting(metrics, status.candidate),
        )


def registry_promoter(registry: Registry) -> Callable[[ModelService, RolloutStatus], str]:
    """Moves the rollout's alias to the model its candidate serves, as `mlpatterns
    promote` would, recorded as done by MLPATTERNS_ACTOR or `rollout <service>`."""

    def move(service: ModelService, status: RolloutStatus) -> str:
        rollout = service.spec.rollout
        assert rollout is not None
        assert rollout.promote_alias is not None
        version = next(v for v in service.spec.versions if v.name == status.candidate)
        ref = parse_ref(version.model.uri) if version.model else None
        if not isinstance(ref, RegistryRef):
            raise ValueError(f"version {version.name} is not served from the registry")
        source = ref.alias or ref.version
        assert source is not None
        by = os.environ.get("MLPATTERNS_ACTOR") or f"rollout {service.metadata.name}"
        moved = promote(registry, ref.name, source, rollout.promote_alias, by=by)
        return (
            f"{ref.name}@{moved.alias} now names {moved.version} (was {moved.previous or 'unset'})"
        )

    return move
