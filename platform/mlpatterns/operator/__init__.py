"""kopf handlers that apply render output and keep a ModelService's status true."""

__all__ = [
    "handlers",
    "kube",
    "pods",
    "policy",
    "reconcile",
    "rollout",
    "timers",
]  # the room's modules, each with its own __all__
