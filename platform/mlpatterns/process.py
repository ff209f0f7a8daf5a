"""Process-wide settings shared by the long-running servers (model server, gateway)."""

from __future__ import annotations

import gc


def calm_garbage_collector() -> None:
    """What start-up allocated (model, session, metrics, routes) lives as long as the
    server: keep it out of the collector's scans, and collect young objects less
    often, so that collection pauses do not land on request latency."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
