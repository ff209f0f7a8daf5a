"""Multiple-stage prediction: a light version answers at once (the traffic's), and a
heavy `followUp` version answers the same request again, asynchronously. Every
request to the simple API (`POST /predict`) is copied to the follow-up's
asynchronous API, whose job for it is named by the request's id; the client
fetches the heavy answer at `/jobs/{request id}` through the same gateway."""

from __future__ import annotations

from collections.abc import Collection

from pydantic import Field

from mlpatterns.api.base import Strict

__all__ = ["FOLLOW_UP_PATH", "FOLLOW_UP_PATTERNS", "JOBS_PREFIX", "FollowUp", "check_follow_up"]

FOLLOW_UP_PATH = "/predict"  # what is copied: the simple API, which the async API takes
JOBS_PREFIX = "/jobs/"  # where the follow-up's answers are fetched
FOLLOW_UP_PATTERNS = ("synchronous", "web-single")


class FollowUp(Strict):
    version: str = Field(
        description="The heavy version: served asynchronously, it answers every request "
        "the light versions answer, at /jobs/{request id}."
    )


def check_follow_up(
    follow_up: FollowUp,
    *,
    pattern: str,
    versions: Collection[str],
    answering: Collection[str],
    shadow: str | None,
    has_rollout: bool,
) -> None:
    """What a follow-up needs: a known version that takes no traffic of its own, in a
    pattern whose light versions answer at once, with no shadow or rollout beside it
    (each copies requests too)."""
    name = follow_up.version
    if name not in versions:
        raise ValueError(
            f"followUp names version {name!r}, which is not in spec.versions {sorted(versions)}"
        )
    if pattern not in FOLLOW_UP_PATTERNS:
        raise ValueError(
            f"followUp needs pattern {' or '.join(FOLLOW_UP_PATTERNS)} (the light answer is "
            f"synchronous), not {pattern}"
        )
    if name in answering:
        raise ValueError(
            f"followUp version {name!r} also takes traffic; the heavy version answers only "
            "as a follow-up: drop it from traffic.split and traffic.rules"
        )
    if shadow is not None:
        raise ValueError(
            f"followUp copies every request to {name!r}; traffic.shadow besides it is not "
            "supported: drop one"
        )
    if has_rollout:
        raise ValueError("followUp and spec.rollout cannot be combined: drop one")
