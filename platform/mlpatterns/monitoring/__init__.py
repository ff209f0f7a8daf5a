"""Drift and prediction monitoring, alert rules and reports."""

__all__ = [
    "coverage",
    "html",
    "monitor",
    "reports",
]  # the room's modules, each with its own __all__
