"""Which version answered a recent request: the gateway remembers it by request id,
for feedback that arrives later and names only the id."""

from __future__ import annotations

__all__ = ["RecentVersions"]


class RecentVersions:
    """Request id -> version for at least the last `capacity` requests: the newer ids,
    then the older ones; when the newer reach `capacity` they become the older and the
    older are forgotten. So never more than twice `capacity` are kept, and remembering
    costs one dict store (no eviction per request)."""

    def __init__(self, capacity: int) -> None:
        self._generation = max(1, capacity)
        self._newer: dict[str, str] = {}
        self._older: dict[str, str] = {}

    def add(self, request_id: str, version: str) -> None:
        newer = self._newer
        newer[request_id] = version
        if len(newer) >= self._generation:
            self._older, self._newer = newer, {}

    def get(self, request_id: str) -> str | None:
        return self._newer.get(request_id) or self._older.get(request_id)

    def __len__(self) -> int:
        return len(self._newer) + len(self._older)
