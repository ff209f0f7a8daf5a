"""mlpatterns: the ML system design patterns as a Kubernetes-native platform."""

__version__ = "0.1.0"

__all__ = ["__version__"]
