"""What a report covers: the service, the versions that answered (with the model
version and file digest each served), the time range and the traffic phase. Every
report states it, so that a reader knows what the numbers are about and the same
command over the same window gives the same numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["ALL_PHASES", "Coverage", "ServedVersion", "coverage", "in_window", "utc_time"]

ALL_PHASES = "all"


@dataclass(frozen=True)
class ServedVersion:
    name: str  # the ModelService version
    model: str  # the model version it served ("" when no prediction record says)
    digest: str  # that model file's sha256 ("" likewise)


@dataclass(frozen=True)
class Coverage:
    service: str
    phase: str
    start: datetime | None  # the first and last record counted
    end: datetime | None
    versions: tuple[ServedVersion, ...]

    @property
    def window(self) -> str:
        if self.start is None or self.end is None:
            return "no records"
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def utc_time(value: object) -> datetime | None:
    """An ISO 8601 time as an aware datetime (UTC when it names no offset); None when
    it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def in_window(
    records: Iterable[dict[str, Any]], since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """The records stamped within [since, until]; with neither bound, all of them.
    With a bound, a record whose time cannot be read is left out."""
    records = list(records)
    if since is None and until is None:
        return records
    kept = []
    for record in records:
        when = utc_time(record.get("timestamp"))
        if when is None or (since and when < since) or (until and when > until):
            continue
        kept.append(record)
    return kept


def coverage(
    service: str,
    phase: str,
    counted: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]],
    versions: Sequence[str],
) -> Coverage:
    """The coverage of a report that counted `counted`: its time range, and for each
    of `versions` the model and digest its prediction records name."""
    times = sorted(t for r in counted if (t := utc_time(r.get("timestamp"))) is not None)
    served: dict[str, tuple[str, str]] = {}
    for record in predictions:
        version = str(record.get("version", ""))
        if version in versions and version not in served:
            served[version] = (str(record.get("model", "")), str(record.get("digest", "")))
    return Coverage(
        service=service,
        phase=phase,
        start=times[0] if times else None,
        end=times[-1] if times else None,
        versions=tuple(ServedVersion(v, *served.get(v, ("", ""))) for v in versions),
    )
