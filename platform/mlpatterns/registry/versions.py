"""Model version numbers as the catalog defines them: `X.Y.Z-<data>.<split>`.

X is the release (0 = pre-release), Y the interface (bumped when the model's input or
output signature changes), Z the logic (bumped by every other new version). The
suffix names the data (its digest's first 8 hex digits) and the split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlpatterns.registry.metadata import Signature

__all__ = ["Version", "VersionError", "next_version"]

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9a-f]{8})\.([a-z]+\d+s\d+))?$")


class VersionError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Version:
    release: int
    interface: int
    logic: int
    data: str = ""
    split: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text)
        if not match:
            raise VersionError(
                f"{text!r} is not a model version: expected X.Y.Z or X.Y.Z-<data>.<split>, "
                "e.g. 0.1.0 or 0.1.0-3f2a9c1b.strat20s42"
            )
        x, y, z, data, split = match.groups()
        return cls(int(x), int(y), int(z), data or "", split or "")

    @property
    def core(self) -> str:
        return f"{self.release}.{self.interface}.{self.logic}"

    def __str__(self) -> str:
        return f"{self.core}-{self.data}.{self.split}" if self.data else self.core


def next_version(
    existing: Iterable[tuple[Version, Signature]],
    signature: Signature,
    *,
    release: int,
    data_sha256: str,
    split_label: str,
) -> Version:
    """The version a new model gets, given the versions already registered under its name.

    Within a release: a new signature bumps the interface and resets the logic; the
    same signature bumps the logic. A new release starts at X.1.0.
    """
    same_release = sorted((v, s) for v, s in existing if v.release == release)
    if not same_release:
        interface, logic = 1, 0
    else:
        latest, latest_signature = same_release[-1]
        if latest_signature != signature:
            interface, logic = latest.interface + 1, 0
        else:
            interface, logic = latest.interface, latest.logic + 1
    return Version(release, interface, logic, data_sha256[:8], split_label)
