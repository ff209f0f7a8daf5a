"""A rollout's status as bytes, for the embedded mode's status file (the cluster
keeps it in the ModelService's status): what the driver writes and the gateway and
`mlpatterns rollout status` read."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from mlpatterns.api.rollout import RolloutStatus

__all__ = ["dump_status", "parse_status", "status_data", "status_from"]


def parse_status(text: bytes) -> RolloutStatus | None:
    """The status in `text`; None when there is none or it cannot be read (a rollout
    without a status routes as its first step)."""
    if not text.strip():
        return None
    try:
        return status_from(json.loads(text))
    except ValueError:
        return None


def status_data(status: RolloutStatus) -> dict[str, Any]:
    """The status as a resource's `status.rollout` holds it."""
    return status.model_dump(mode="json", by_alias=True)


def dump_status(status: RolloutStatus) -> bytes:
    return json.dumps(status_data(status), indent=2).encode()


def status_from(data: Any) -> RolloutStatus | None:
    """The status in a resource's `status.rollout` (None: none, or unreadable)."""
    if not isinstance(data, dict):
        return None
    try:
        return RolloutStatus.model_validate(data)
    except ValidationError:
        return None
