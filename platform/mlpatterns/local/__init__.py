"""The embedded mode: model servers and the gateway as supervised local processes."""

__all__ = [
    "cron",
    "plan",
    "rollout",
    "runtime",
    "supervisor",
]  # the room's modules, each with its own __all__
