"""The `mlpatterns` command."""
