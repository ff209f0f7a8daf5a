"""Every catalog pattern's example under manifests/patterns runs with `mlpatterns up -f`
and shows its behaviour: the same files `kubectl apply -k` takes in a cluster."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from mlpatterns.api.load import load_model_service
from mlpatterns.local.plan import image_folder
from tests.integration.test_embedded import ROW
from tests.support.embedded import MLPATTERNS, Up, start_up
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration
PATTERNS = Path(__file__).parents[2] / "manifests" / "patterns"


def answers(up: Up) -> None:
    reply = httpx.post(f"{up.url}/predict", json=ROW, timeout=30)
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["probabilities"][0]) == 3


def shadow(up: Up) -> None:
    for _ in range(5):
        assert httpx.post(f"{up.url}/predict", json=ROW).headers["x-mlpatterns-version"] == (
            "current"
        )
    wait_until(
        "shadow records",
        lambda: up.mlpatterns("report", "shadow", "iris-shadow").returncode == 0,
        15,
    )


def sticky(up: Up) -> None:
    for user in range(10):
        seen = {
            httpx.post(f"{up.url}/predict", json=ROW, headers={"x-user-id": f"u{user}"}).headers[
                "x-mlpatterns-version"
            ]
            for _ in range(5)
        }
        assert len(seen) == 1


def kill_switch(up: Up) -> None:
    seen = {
        httpx.post(f"{up.url}/predict", json=ROW).headers["x-mlpatterns-version"] for _ in range(40)
    }
    assert seen == {"current"}  # the candidate is switched off


def conditions(up: Up) -> None:
    eu = httpx.post(f"{up.url}/predict", json=ROW, headers={"x-region": "eu"})
    assert eu.headers["x-mlpatterns-version"] == "candidate"


def asynchronous(up: Up) -> None:
    job = httpx.post(f"{up.url}/predict", json=ROW).json()

    def done() -> bool:
        status = httpx.get(f"{up.url}/jobs/{job['job_id']}").json()
        return bool(status["state"] == "done")

    wait_until("the job", done, 30)


def stages(up: Up) -> None:
    light = httpx.post(f"{up.url}/predict", json=ROW, timeout=30)
    assert light.headers["x-mlpatterns-version"] == "light"

    def followed() -> bool:
        heavy = httpx.get(f"{up.url}{light.headers['x-mlpatterns-follow-up']}", timeout=10)
        return bool(heavy.status_code == 200 and heavy.json()["state"] == "done")

    wait_until("the heavy answer", followed, 30)


def data_cache(up: Up) -> None:
    features = redis.Redis.from_url(os.environ["MLPATTERNS_REDIS_URL"])
    names = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
    features.hset("features:iris:17", mapping=dict(zip(names, ROW["data"][0], strict=True)))
    features.close()
    by_id = httpx.post(f"{up.url}/predict", json={"ids": ["17"]}, timeout=30)
    assert by_id.status_code == 200, by_id.text
    assert by_id.json() == httpx.post(f"{up.url}/predict", json=ROW, timeout=30).json()


def graph(versions: str) -> Callable[[Up], None]:
    def check(up: Up) -> None:
        answer = httpx.post(f"{up.url}/predict", json=ROW, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-mlpatterns-version"] == versions
        assert len(answer.json()["probabilities"][0]) == 3

    return check


def batch(up: Up) -> None:
    output = up.file.parent / "iris-predictions.db"
    wait_until("batch output", lambda: output.exists() and _rows(output) == 150, 60)


def _rows(database: Path) -> int:
    try:
        with sqlite3.connect(database) as connection:
            return int(connection.execute("select count(*) from predictions").fetchone()[0])
    except sqlite3.Error:
        return 0


def rollout(up: Up) -> None:
    for _ in range(5):  # its first step is a shadow: clients get the current version
        assert httpx.post(f"{up.url}/predict", json=ROW).headers["x-mlpatterns-version"] == (
            "current"
        )
    assert httpx.get(f"{up.url}/-/routes").json()["shadow"][0] == "candidate"
    shown = up.mlpatterns("rollout", "status", "iris-rollout")
    assert "Progressing, step 1 of 5 (shadow)" in shown.stdout, shown.stdout + shown.stderr


CHECKS: dict[str, Callable[[Up], None]] = {
    "web-single": answers,
    "synchronous": answers,
    "asynchronous": asynchronous,
    "batch": batch,
    "preprocess-prediction": answers,
    "shadow-ab": shadow,
    "online-ab": sticky,
    "parameter-based": kill_switch,
    "condition-based": conditions,
    "model-load": answers,
    "model-in-image": answers,
    "training-to-serving": rollout,
    "multiple-stage": stages,
    "data-cache": data_cache,
    "microservice-vertical": graph("second"),
    "microservice-horizontal": graph("logistic,forest"),
}


def test_every_pattern_has_an_example() -> None:
    assert {p.name for p in PATTERNS.iterdir() if p.is_dir()} == set(CHECKS)


@pytest.mark.parametrize("pattern", sorted(CHECKS))
def test_pattern_runs_embedded(
    pattern: str,
    aliased_home: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = PATTERNS / pattern / "modelservice.yaml"
    service = load_model_service(source)
    if any(v.features and v.features.redis for v in service.spec.versions):
        url = request.getfixturevalue("redis_url").replace("/0", "/4")
        monkeypatch.setenv("MLPATTERNS_REDIS_URL", url)  # the features' Redis
    file = tmp_path / "modelservice.yaml"
    file.write_text(source.read_text())
    for version in service.spec.versions:
        if version.image is not None:  # model-in-image: the image's build context
            subprocess.run(
                [
                    MLPATTERNS,
                    "build-context",
                    "models:/iris@candidate",
                    "-o",
                    str(image_folder(aliased_home, version.image)),
                ],
                env={**os.environ, "MLPATTERNS_HOME": str(aliased_home)},
                check=True,
                capture_output=True,
                timeout=60,
            )
    if service.spec.batch is not None:
        (tmp_path / service.spec.batch.input).write_text(_iris_csv())
    up = start_up(aliased_home, file, cwd=tmp_path)
    try:
        CHECKS[pattern](up)
    finally:
        output = up.stop()
    assert up.process.returncode == 0, output


def _iris_csv() -> str:
    from sklearn.datasets import load_iris

    data = load_iris()
    lines = ["id,sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm"]
    lines += [f"{i}," + ",".join(f"{x:g}" for x in row) for i, row in enumerate(data.data)]
    return "\n".join(lines) + "\n"
