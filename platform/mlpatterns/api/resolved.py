"""A registry reference resolved: what `models:/iris@production` names now. The
operator pins pods to it and shows it in `status.models`; the embedded mode restarts
a version's server when it changes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ResolvedModel"]


@dataclass(frozen=True)
class ResolvedModel:
    uri: str  # models:/name/version
    sha256: str

    def describe(self) -> str:
        return f"{self.uri.removeprefix('models:/')} sha256:{self.sha256[:12]}"
