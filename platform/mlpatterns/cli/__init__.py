"""The `mlpatterns` command."""

__all__ = [
    "embedded",
    "generated",
    "kubectl_plugin",
    "main",
    "operator",
    "pipeline",
    "planned",
    "quickstart",
    "registry",
    "render",
    "report",
    "serving",
    "tour",
    "traffic_options",
    "training",
]  # the room's modules, each with its own __all__
