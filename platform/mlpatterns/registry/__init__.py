"""Artifact store (local folder or S3/MinIO), model and dataset versions, metadata, aliases
and lineage.
"""
