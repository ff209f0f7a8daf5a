"""The log streams in an object store, as in a cluster: real model servers and a
gateway write predictions, decisions and feedback to a real MinIO, partitioned by
service, version and hour, and `mlpatterns report shadow|ab --from s3://BUCKET`
reads them on a machine that has none of the files."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from minio import Minio

from mlpatterns.serving.server import fetch_model
from mlpatterns.settings import load_settings
from tests.support.embedded import MLPATTERNS, Up, start_up
from tests.support.servers import S3Server

pytestmark = pytest.mark.integration
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
NAME = "iris-logs"
PARTITION = re.compile(
    rf"^logs/(predictions|decisions|feedback)/{NAME}/(current|challenger|gateway)/"
    r"\d{4}-\d{2}-\d{2}/\d{2}/\d{12}-[0-9a-f]{8}\.jsonl$"
)


def modelservice(current: Path, challenger: Path, traffic: dict[str, object]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "mlpatterns.io/v1alpha1",
            "kind": "ModelService",
            "metadata": {"name": NAME},
            "spec": {
                "versions": [
                    {"name": "current", "model": {"uri": str(current)}},
                    {"name": "challenger", "model": {"uri": str(challenger)}},
                ],
                "traffic": traffic,
            },
        }
    )


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, and the environment that points every process at it."""
    name = f"logs-{secrets.token_hex(4)}"
    Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False).make_bucket(
        name
    )
    for key, value in {
        "MLPATTERNS_S3_ENDPOINT": s3_server.endpoint,
        "MLPATTERNS_S3_ACCESS_KEY": s3_server.access_key,
        "MLPATTERNS_S3_SECRET_KEY": s3_server.secret_key,
        "MLPATTERNS_S3_SECURE": "false",
        "MLPATTERNS_S3_BUCKET": name,
    }.items():
        monkeypatch.setenv(key, value)
    return name


def report(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLPATTERNS, "report", *args],
        env={**os.environ, "MLPATTERNS_HOME": str(home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_reports_read_a_clusters_logs_from_the_object_store(
    aliased_home: Path, bucket: str, s3_server: S3Server, tmp_path: Path
) -> None:
    local = load_settings(home=aliased_home, s3_endpoint=None)
    current = fetch_model("models:/iris@production", local)
    challenger = fetch_model("models:/iris@candidate", local)
    file, home = tmp_path / "iris.yaml", tmp_path / "home"
    file.write_text(modelservice(current, challenger, {"shadow": {"version": "challenger"}}))
    up: Up = start_up(home, file)
    try:
        with httpx.Client(base_url=up.url, timeout=30) as client:
            for n in range(60):
                answer = client.post("/predict", json={"data": [ROWS[n % 3]]})
                assert answer.headers["x-mlpatterns-version"] == "current"
            split = {"split": [{"version": "current", "weight": 50},
                               {"version": "challenger", "weight": 50}]}  # fmt: skip
            file.write_text(modelservice(current, challenger, split))
            client.post("/-/reload").raise_for_status()
            started = datetime.now(UTC)
            for n in range(200):
                answer = client.post("/predict", json={"data": [ROWS[n % 3]]})
                request_id = answer.headers["x-request-id"]
                outcome = answer.headers["x-mlpatterns-version"] == "challenger" or n % 2 == 0
                feedback = {"request_id": request_id, "outcome": outcome}
                client.post("/feedback", json=feedback).raise_for_status()
    finally:
        up.stop()  # every process flushes its buffered records on the way out

    assert not (home / "logs" / "predictions").exists()  # nothing went to files
    storage = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)
    keys = [str(o.object_name) for o in storage.list_objects(bucket, recursive=True)]
    assert keys
    assert [key for key in keys if not PARTITION.match(key)] == []

    elsewhere = tmp_path / "laptop"  # no logs of its own: everything comes from the bucket
    shadow = report(elsewhere, "shadow", NAME, "--from", f"s3://{bucket}")
    assert shadow.returncode == 0, shadow.stdout + shadow.stderr
    assert re.search(r"agreement [\d.]+% over 60 rows in 60 requests", shadow.stdout)

    since = started.strftime("%Y-%m-%dT%H:%M:%S.%f")
    ab = report(elsewhere, "ab", NAME, "--from", f"s3://{bucket}", "--since", since, "-o", "json")
    assert ab.returncode == 0, ab.stdout + ab.stderr
    rows = {v["name"]: [v["requests"], v["outcomes"]] for v in json.loads(ab.stdout)["versions"]}
    assert set(rows) == {"current", "challenger"}, ab.stdout
    assert sum(requests for requests, _ in rows.values()) == 200
    assert all(outcomes == requests for requests, outcomes in rows.values())

    missing = report(elsewhere, "shadow", "nosuch", "--from", f"s3://{bucket}")
    assert missing.returncode == 1
    assert f"no prediction records for nosuch in s3://{bucket}/logs" in missing.stdout
