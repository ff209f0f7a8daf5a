"""The route table compiled from a ModelService's traffic policy, the Istio renderer and
the local gateway that executes the same table.
"""

__all__ = [
    "breaker",
    "decide",
    "gateway",
    "gateway_app",
    "istio",
    "kube_watch",
    "messages",
    "openapi",
    "table",
    "thresholds",
]  # the room's modules, each with its own __all__
