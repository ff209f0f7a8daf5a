"""Training-to-serving: a rollout's decisions (`decide`, pure) and the figures they
are made from (`observe`, pure functions of metrics text and log records). The
operator and the embedded mode fetch the inputs and apply the answers."""

__all__ = ["decide", "observe", "promql", "status"]  # the room's modules, each with its own __all__
