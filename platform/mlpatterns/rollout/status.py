"""A rollout's status as bytes, for the embedded mode's status file (the cluster
keeps it in the ModelService's status): what the driver writes and the gateway and
`mlpatterns rollout status` read."""

from __future__ import annotations

import json

from pydantic import ValidationError

from mlpatterns.api.rollout import RolloutStatus

__all__ = ["dump_status", "parse_status"]


def parse_status(text: bytes) -> RolloutStatus | None:
    """The status in `text`; None when there is none or it cannot be read (a rollout
    without a status routes as its first step)."""
    if not text.strip():
        return None
    try:
        return RolloutStatus.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None


def dump_status(status: RolloutStatus) -> bytes:
    return json.dumps(status.model_dump(mode="json", by_alias=True), indent=2).encode()
