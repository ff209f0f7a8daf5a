"""The `mlpatterns` command."""

__all__ = [
    "completion",
    "embedded",
    "generated",
    "kubectl_plugin",
    "main",
    "monitor",
    "operator",
    "output",
    "pipeline",
    "pipeline_files",
    "planned",
    "quickstart",
    "reference",
    "registry",
    "render",
    "report",
    "serving",
    "tour",
    "traffic_options",
    "training",
]  # the room's modules, each with its own __all__
