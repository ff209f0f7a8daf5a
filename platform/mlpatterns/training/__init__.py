"""Datasets, validation, training, evaluation, ONNX export and parameter search: plain
functions that kfp components call.
"""

__all__ = [
    "choices",
    "datasets",
    "evaluation",
    "export",
    "kfp_local",
    "kfp_manifests",
    "models",
    "search",
    "search_steps",
    "space",
    "steps",
    "validation",
]  # the room's modules, each with its own __all__
