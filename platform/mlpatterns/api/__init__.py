"""The resource models: ModelService spec and status, the CRD schemas generated from them,
validation with clear messages. Imports no sibling room.
"""

__all__ = [
    "base",
    "edits",
    "load",
    "modelservice",
    "regex",
    "resolved",
    "rollout",
    "schema",
]  # the room's modules, each with its own __all__
