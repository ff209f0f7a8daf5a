"""The resource models: ModelService spec and status, the CRD schemas generated from them,
validation with clear messages. Imports no sibling room.
"""

__all__ = [
    "edits",
    "load",
    "modelservice",
    "regex",
    "schema",
]  # the room's modules, each with its own __all__
