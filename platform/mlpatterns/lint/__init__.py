"""`mlpatterns lint`: the catalog's anti-patterns, found in a repository's
ModelServices, pipelines, images and the registry metadata of the models they serve."""

__all__ = ["formats", "images", "pipelines", "rules", "scan", "services", "sources"]
# the room's modules, each with its own __all__
