"""Test-suite wide rules.

Every test declares its kind with exactly one marker (unit, integration,
cluster or node), so that `pytest -m unit` is the fast everyday run and CI runs all.
"""

from __future__ import annotations

import pytest

KINDS = ("unit", "integration", "cluster", "node")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kinds = [kind for kind in KINDS if item.get_closest_marker(kind)]
        if len(kinds) != 1:
            raise pytest.UsageError(
                f"{item.nodeid} must carry exactly one of the markers {KINDS}, has {kinds}"
            )
