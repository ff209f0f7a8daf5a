"""What every server's Prometheus metrics share: latency buckets fine enough for the
answers these servers give (a model server's p50 is a tenth of a millisecond, the
gateway's own share less), a histogram kept in plain numbers for what every request
touches (handed to prometheus_client when scraped, by each server's collector), and
the process's own metrics (CPU, memory, open files)."""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

__all__ = ["LATENCY_BUCKETS", "PlainHistogram", "add_process_metrics"]

LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def add_process_metrics(registry: CollectorRegistry) -> None:
    """`process_*` (CPU seconds, resident memory, open files, start time; read from /proc
    when scraped) and `python_info` in `registry`."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)


class PlainHistogram:
    """A histogram's counts in a list, for one writing thread."""

    __slots__ = ("bounds", "counts", "labels", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.labels = [repr(float(bound)) for bound in bounds] + ["+Inf"]  # "le" as Go prints it

    def observe(self, value: float) -> None:
        # Prometheus buckets are "less than or equal": the first bound >= value
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def add(self, counts: list[int], total: float) -> None:
        """Add counts made elsewhere, per bucket (the last is +Inf), and their sum."""
        for index, count in enumerate(counts):
            self.counts[index] += count
        self.total += total

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by upper bound, as the exposition format wants them."""
        cumulative, running = [], 0
        for label, count in zip(self.labels, self.counts, strict=True):
            running += count
            cumulative.append((label, float(running)))
        return cumulative
