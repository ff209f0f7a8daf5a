"""Prediction monitoring end to end: a real Prometheus (Debian's package) scrapes a
real model server on loopback and evaluates the platform's alert rules.

The rules are the chart's file with each `for` cut from minutes to seconds, and
Prometheus scrapes and evaluates every second instead of every minute, so that what
takes ten minutes in a cluster takes seconds here. Traffic is iris rows (the data
the model was trained on) with a jitter of 0.01 cm, so that inputs do not repeat;
each phase sends enough to fill the server's drift window (2,000 rows from one
request in eight).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpatterns.serving.drift_window import WINDOW_ROWS
from mlpatterns.serving.metrics import DRIFT_SAMPLE
from tests.integration.test_model_server import Server, start_server
from tests.support.monitoring import (
    firing,
    iris_rows,
    query,
    rules_in_seconds,
    seconds_until_firing,
    send,
)
from tests.support.servers import prometheus_server

pytestmark = pytest.mark.integration
FILL = WINDOW_ROWS * DRIFT_SAMPLE  # rows that fill the drift window with requests of 100


@pytest.fixture
def watched(trained: tuple[Path, str], tmp_path: Path) -> Iterator[tuple[Server, str]]:
    home, version = trained
    server = start_server(home, f"models:/iris/{version}", "--service", "iris")
    target = server.url.removeprefix("http://")
    try:
        with prometheus_server(
            tmp_path / "prometheus", [target], rules_in_seconds(tmp_path)
        ) as url:
            yield server, url
    finally:
        server.stop()


def test_steady_traffic_raises_nothing_and_shifts_raise_their_alerts(
    watched: tuple[Server, str],
) -> None:
    server, prometheus = watched
    send(server, iris_rows(FILL, seed=1))
    steady_seconds = 30
    deadline = time.monotonic() + steady_seconds
    seed = 2
    while time.monotonic() < deadline:  # bounded: 100 rows every half second
        send(server, iris_rows(100, seed=seed))
        seed += 1
        time.sleep(0.5)
    # every evaluation of the steady phase (one a second), pending or firing
    raised = query(prometheus, f"max_over_time(ALERTS[{steady_seconds}s])")
    assert raised == [], raised
    assert query(prometheus, "mlpatterns_drift_window_rows")[0]["value"][1] == "2000"

    shifted = iris_rows(FILL, seed=100)
    shifted[:, 2] += 1.0  # petal length, one centimetre longer
    send(server, shifted)
    drift_seconds = seconds_until_firing(prometheus, "MlpatternsFeatureDrift")
    assert firing(prometheus)["MlpatternsFeatureDrift"]["feature"] == "petal_length_cm"
    assert drift_seconds < 20  # the rule's 10 (scaled) seconds, a scrape and an evaluation

    send(server, iris_rows(FILL, seed=200, only=0))  # only setosa from now on
    mix_seconds = seconds_until_firing(prometheus, "MlpatternsClassMixShift")
    assert mix_seconds < 20

    # no more requests: the last (scaled) ten minutes against the hour before
    volume_seconds = seconds_until_firing(prometheus, "MlpatternsVolumeDrop")
    assert volume_seconds < 30  # the rate's 10 s window empties, then the rule's 10 s
    print(
        f"drift fired after {drift_seconds:.1f}s, class mix after {mix_seconds:.1f}s, "
        f"volume drop after {volume_seconds:.1f}s"
    )
