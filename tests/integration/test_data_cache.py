"""The data cache in real model servers: a request naming entities (`{"ids": [...]}`)
is answered as if it had sent their features, read from a SQLite table, a Parquet
file or a real Redis through the cache; what cannot be answered says why (an unknown
id, an empty feature, a source that is down, a server without a source)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from sklearn.datasets import load_iris

from tests.integration.test_model_server import Server, start_server
from tests.support.metrics import sample, scrape
from tests.support.processes import free_port

pytestmark = pytest.mark.integration
NAMES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
FLOWERS = load_iris().data.tolist()
IDS = ["0", "50", "100"]


def model(trained: tuple[Path, str]) -> str:
    return f"models:/iris/{trained[1]}"


def write_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        columns = ", ".join(f"{name} REAL" for name in NAMES)
        db.execute(f"CREATE TABLE flowers (id INTEGER PRIMARY KEY, {columns})")
        db.executemany(
            "INSERT INTO flowers VALUES (?, ?, ?, ?, ?)",
            [(i, *row) for i, row in enumerate(FLOWERS)],
        )
        db.execute("INSERT INTO flowers (id, sepal_length_cm) VALUES (999, 5.0)")  # the rest NULL


@pytest.fixture(scope="module")
def from_sqlite(
    trained: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    database = tmp_path_factory.mktemp("features") / "flowers.db"
    write_sqlite(database)
    source = f"sqlite:{database}?table=flowers&id=id"
    running = start_server(trained[0], model(trained), "--features", source, "--no-log-predictions")
    yield running
    running.stop()


def test_named_entities_are_answered_as_their_features_are(from_sqlite: Server) -> None:
    with httpx.Client(base_url=from_sqlite.url) as client:
        by_id = client.post("/predict", json={"ids": IDS})
        by_value = client.post("/predict", json={"data": [FLOWERS[int(i)] for i in IDS]})
        labels = client.post("/predict/label", json={"ids": [0, 100]})  # integers too

    assert by_id.status_code == 200, by_id.text
    assert by_id.json() == by_value.json()
    assert labels.json() == {"labels": ["setosa", "virginica"]}


def test_repeated_entities_are_read_from_the_cache_not_the_source(from_sqlite: Server) -> None:
    before = scrape(from_sqlite.url)
    name = "mlpatterns_data_cache_lookups_total"
    hits, misses = sample(before, name, result="hit"), sample(before, name, result="miss")
    with httpx.Client(base_url=from_sqlite.url) as client:
        assert client.post("/predict", json={"ids": ["7", "8", "7"]}).status_code == 200
        assert client.post("/predict", json={"ids": ["7", "8"]}).status_code == 200
    after = scrape(from_sqlite.url)
    assert sample(after, name, result="miss") == misses + 2  # 7 and 8, once each
    assert sample(after, name, result="hit") == hits + 2  # both, the second time


def test_what_the_source_cannot_answer_is_a_4xx_that_says_so(from_sqlite: Server) -> None:
    with httpx.Client(base_url=from_sqlite.url) as client:
        unknown = client.post("/predict", json={"ids": ["1", "nobody", "12345"]})
        empty = client.post("/predict", json={"ids": ["999"]})
        not_ids = client.post("/predict", json={"ids": "1"})
        odd = client.post("/predict", json={"ids": ["a b"]})
        many = client.post("/predict", json={"ids": [str(i) for i in range(1001)]})
        neither = client.post("/predict", json={"rows": [1]})

    assert unknown.status_code == 404
    assert "no features for 2 entities: 'nobody', '12345'" in unknown.json()["error"]
    assert empty.status_code == 422
    assert "entity '999' has no value for sepal_width_cm" in empty.json()["error"]
    assert not_ids.status_code == 422
    assert odd.status_code == 422
    assert "ids[0] is 'a b'" in odd.json()["error"]
    assert many.status_code == 413
    assert neither.status_code == 422


def test_a_parquet_file_is_a_source_too(trained: tuple[Path, str], tmp_path: Path) -> None:
    path = tmp_path / "flowers.parquet"
    columns = {"flower": list(range(len(FLOWERS)))}
    columns.update({n: [row[i] for row in FLOWERS] for i, n in enumerate(NAMES)})
    pq.write_table(pa.table(columns), path)
    running = start_server(
        trained[0],
        model(trained),
        "--features",
        f"parquet:{path}?id=flower",
        "--no-log-predictions",
    )
    try:
        with httpx.Client(base_url=running.url) as client:
            by_id = client.post("/predict", json={"ids": IDS})
            by_value = client.post("/predict", json={"data": [FLOWERS[int(i)] for i in IDS]})
            unknown = client.post("/predict", json={"ids": ["x"]})
    finally:
        running.stop()
    assert by_id.json() == by_value.json()
    assert unknown.status_code == 404


def test_redis_hashes_are_a_source_and_a_redis_that_is_down_is_a_503(
    trained: tuple[Path, str], redis_url: str
) -> None:
    features = redis_url.replace("/0", "/3")
    client = redis.Redis.from_url(features)
    for entity in IDS:
        client.hset(
            f"features:iris:{entity}", mapping=dict(zip(NAMES, FLOWERS[int(entity)], strict=True))
        )
    client.close()
    options = ("--features", "redis:features:iris:", "--no-log-predictions")
    running = start_server(
        trained[0], model(trained), *options, env={"MLPATTERNS_REDIS_URL": features}
    )
    down = start_server(
        trained[0],
        model(trained),
        *options,
        env={"MLPATTERNS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
    )
    try:
        by_id = httpx.post(f"{running.url}/predict", json={"ids": IDS}, timeout=10)
        by_value = httpx.post(
            f"{running.url}/predict", json={"data": [FLOWERS[int(i)] for i in IDS]}, timeout=10
        )
        failed = httpx.post(f"{down.url}/predict", json={"ids": IDS}, timeout=10)
        answered = httpx.post(f"{down.url}/predict", json={"data": [FLOWERS[0]]}, timeout=10)
    finally:
        running.stop()
        down.stop()
    assert by_id.json() == by_value.json()
    assert failed.status_code == 503
    assert failed.headers["retry-after"] == "1"
    assert "the feature source is unavailable" in failed.json()["error"]
    assert answered.status_code == 200  # the features themselves need no source


def test_a_server_without_a_source_says_to_send_the_features(trained: tuple[Path, str]) -> None:
    running = start_server(trained[0], model(trained), "--no-log-predictions")
    try:
        answer = httpx.post(f"{running.url}/predict", json={"ids": IDS}, timeout=10)
    finally:
        running.stop()
    assert answer.status_code == 422
    assert "this version has no feature source" in answer.json()["error"]


def test_a_source_that_cannot_serve_the_model_stops_the_server_before_it_listens(
    trained: tuple[Path, str], tmp_path: Path
) -> None:
    database = tmp_path / "partial.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE flowers (id INTEGER, sepal_length_cm REAL)")
    with pytest.raises(AssertionError, match="has no column sepal_width_cm"):
        start_server(trained[0], model(trained), "--features", f"sqlite:{database}?table=flowers")
