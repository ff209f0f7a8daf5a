"""Why a ModelService's pods are not running, read from their container statuses.

A pod whose model fails its digest check, whose image cannot be pulled or whose
server keeps exiting never becomes Ready, and its Deployment only says "0/1
available". These plain functions turn pod statuses into the reason and message a
ModelService's Degraded condition shows. No API calls here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PodFailure", "pod_failures"]

MESSAGE_LIMIT = 400  # of each container's own message, as the status shows it
PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class PodFailure:
    version: str
    reason: str  # ModelLoadFailed, ImagePullFailed, ContainerConfigInvalid, ContainerFailing
    message: str


def _reason(container: str, waiting: str | None, init: bool) -> str:
    if waiting in PULL_REASONS:
        return "ImagePullFailed"
    if waiting in CONFIG_REASONS:
        return "ContainerConfigInvalid"
    if init and container == "fetch-model":
        return "ModelLoadFailed"
    return "ContainerFailing"


def _failure(status: Mapping[str, Any], init: bool) -> tuple[str, str] | None:
    """(reason, message) when this container is failing, else None."""
    state = status.get("state") or {}
    waiting = (state.get("waiting") or {}).get("reason")
    # a server running again after a crash may have recovered; one waiting to restart has
    # not, nor has an init container retrying after a failure (it must succeed once)
    done = (state.get("terminated") or {}).get("exitCode") == 0
    retrying = init and not done
    last = (status.get("lastState") or {}).get("terminated") if waiting or retrying else None
    terminated = state.get("terminated") or last
    name = status.get("name", "?")
    if waiting in PULL_REASONS | CONFIG_REASONS:
        detail = (state.get("waiting") or {}).get("message") or waiting
        return _reason(name, waiting, init), f"container {name}: {detail}"
    if terminated and terminated.get("exitCode", 0) != 0:
        said = last_words(str(terminated.get("message") or ""))
        message = f"container {name} exited with {terminated.get('exitCode')}"
        return _reason(name, waiting, init), message + (f": {said}" if said else "")
    return None


def last_words(message: str) -> str:
    """The last line a container wrote (its error), without terminal colours, bounded."""
    lines = [line.strip() for line in ANSI.sub("", message).splitlines() if line.strip()]
    if not lines:
        return ""
    last = "".join(ch for ch in lines[-1] if ch.isprintable())
    return last if len(last) <= MESSAGE_LIMIT else "..." + last[-MESSAGE_LIMIT:]


def pod_failures(pods: Iterable[Mapping[str, Any]]) -> list[PodFailure]:
    """One failure per failing pod (its first failing container), in pod-name order."""
    found = []
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("name", "")):
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            continue
        version = (meta.get("labels") or {}).get("version", "?")
        statuses = [(s, True) for s in status.get("initContainerStatuses") or []]
        statuses += [(s, False) for s in status.get("containerStatuses") or []]
        for container, init in statuses:
            failing = _failure(container, init)
            if failing is not None:
                reason, message = failing
                found.append(PodFailure(version, reason, f"pod {meta.get('name')}: {message}"))
                break
    return found
