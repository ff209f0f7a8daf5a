"""Artifact store (local folder or S3/MinIO), model and dataset versions, metadata, aliases
and lineage.
"""

__all__ = [
    "access",
    "metadata",
    "promotion",
    "references",
    "registry",
    "resolve",
    "s3",
    "store",
    "versions",
]  # the room's modules, each with its own __all__
