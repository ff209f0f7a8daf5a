"""What every server's Prometheus metrics share: latency buckets fine enough for the
answers these servers give (a model server's p50 is a tenth of a millisecond, the
gateway's own share less), and the process's own metrics (CPU, memory, open files)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

__all__ = ["LATENCY_BUCKETS", "add_process_metrics"]

LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def add_process_metrics(registry: CollectorRegistry) -> None:
    """`process_*` (CPU seconds, resident memory, open files, start time; read from /proc
    when scraped) and `python_info` in `registry`."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
