"""The Python side of the compiled data plane: what it sends (the table's wire form,
which tables it passes on whole), and what it does with what comes back (records in
bulk, counts folded into the gateway's metrics)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from mlpatterns.logstreams import RecordLog
from mlpatterns.logstreams.writer import FileSink
from mlpatterns.routing.gateway_metrics import GatewayMetrics, SnapshotFold
from mlpatterns.routing.table import compile_table
from mlpatterns.routing.wire import delegated, table_wire
from tests.unit.test_routing import service

pytestmark = pytest.mark.unit
PLAIN = {"svc": "http://127.0.0.1:1", "rf": "http://127.0.0.1:2"}


def test_the_wire_form_carries_routes_matches_windows_and_policies() -> None:
    def windowed(d: dict[str, Any]) -> None:
        d["spec"]["traffic"]["rules"][0]["match"]["time"] = {
            "start": "22:00",
            "end": "02:00",
            "timezone": "Europe/Berlin",
            "days": ["sun"],
        }
        d["spec"]["versions"][1]["parameters"] = {"timeoutSeconds": 2.5, "retries": 1}

    wire = table_wire(compile_table(service(windowed)))
    rule, default = wire["routes"]
    assert rule["headers"] == [["x-region", {"exact": "eu"}]]
    assert rule["window"] == {"timezone": "Europe/Berlin", "minutes": [[9960, 10080], [0, 120]]}
    assert default["destinations"] == [["svc", 90], ["rf", 10]]
    assert wire["sticky_header"] == "x-user-id"
    assert wire["mirror"] == ["rf", 100.0]
    assert wire["policies"]["rf"] == {"timeout_seconds": 2.5, "retries": 1, "breaker": None}


@pytest.mark.parametrize(
    ("change", "upstreams", "reason"),
    [
        (lambda d: None, PLAIN, "rf's threshold"),
        (
            lambda d: d["spec"]["versions"][1].update(
                parameters={}, circuitBreaker={"maxConcurrent": 4}
            ),
            PLAIN,
            None,
        ),
        (
            lambda d: d["spec"]["versions"][1].update(parameters={}),
            {"svc": "https://svc:443", "rf": "http://rf:80"},
            "svc's upstream is not plain http",
        ),
        (lambda d: d["spec"]["versions"][1].update(parameters={}), PLAIN, None),
    ],
)
def test_tables_the_compiled_plane_passes_on_whole(
    change: Any, upstreams: dict[str, str], reason: str | None
) -> None:
    assert delegated(compile_table(service(change)), upstreams) == reason


class Held:
    """A sink that holds its batches until released, so the buffer fills."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lines: list[bytes] = []

    def write(self, lines: list[bytes]) -> None:
        self.release.wait(5)
        self.lines += lines

    def close(self) -> None:
        return


def test_lines_in_bulk_are_bounded_and_written_as_they_came() -> None:
    sink = Held()
    log = RecordLog(sink, capacity=10, batch_size=4, flush_interval=0.01)
    lines = [b'{"n":%d}\n' % i for i in range(14)]
    assert log.submit_lines(lines) == 10
    assert log.dropped == 4
    sink.release.set()
    log.close()
    assert sink.lines == lines[:10]


def test_bulk_lines_reach_a_file_unchanged(tmp_path: Path) -> None:
    log = RecordLog(FileSink(tmp_path / "decisions.jsonl"))
    lines = [b'{"request_id":"r%d"}\n' % i for i in range(3)]
    log.submit_lines(lines)
    log.close()
    assert (tmp_path / "decisions.jsonl").read_bytes() == b"".join(lines)


def snapshot(count: int, errors: int, seconds: list[int], total: float) -> dict[str, Any]:
    return {
        "requests": [["iris", "default", "svc", 200, count]],
        "seconds": [["iris", "svc", seconds, total]],
        "overhead": [["iris", seconds, total / 10]],
        "shadow_errors": [["iris", "rf", errors]],
        "shadow_skipped": [],
        "mirror_drops": [["iris", errors]],
        "breaker_refusals": [["iris", "svc", "full", errors]],
        "records_dropped": errors,
    }


def test_cumulative_snapshots_add_what_grew_to_the_gateways_own_counts() -> None:
    metrics = GatewayMetrics()
    metrics.answers.answered("iris", "default", "svc", 200, 0.002, 0.0001)  # its own
    fold = SnapshotFold(metrics)
    buckets = len(metrics.answers.bounds) + 1
    fold.fold(snapshot(5, 1, [0] * (buckets - 1) + [5], 5.0))
    fold.fold(snapshot(8, 3, [0] * (buckets - 1) + [8], 8.0))
    assert metrics.answers.counts[("iris", "default", "svc", 200)] == 9
    timings = metrics.answers.seconds[("iris", "svc")]
    assert timings.counts[-1] == 8
    assert timings.total == pytest.approx(8.002)
    assert metrics.shadow_errors.labels("iris", "rf")._value.get() == 3
    assert metrics.mirror_drops.labels("iris")._value.get() == 3
    assert metrics.breaker_refusals.labels("iris", "svc", "full")._value.get() == 3
    assert metrics.records_dropped._value.get() == 3
