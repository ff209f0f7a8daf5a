"""The batch pattern on the object store, as its CronJob runs it in a cluster: rows in
a real MinIO, Parquet parts written back there with the serving user's keys, a run
stopped by SIGTERM (as a deleted Job's pod is) and one killed mid-way, then a rerun
redoing only the ids that have no part yet."""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from minio import Minio

from tests.integration.test_batch import FEATURES, IRIS_ROWS, MLPATTERNS, finish
from tests.support.processes import die_with_parent
from tests.support.servers import S3Server

pytestmark = pytest.mark.integration
BUCKET = "batchstore"
ROWS = 400_000
OUTPUT = f"s3://{BUCKET}/batch/iris-predictions.parquet"


def serving_user(s3_server: S3Server) -> dict[str, str]:
    """`mlpatterns storage grant` on the bucket; the serving user's MLPATTERNS_S3_*."""
    access, secret = "serving-" + secrets.token_hex(4), secrets.token_hex(16)
    env = {
        "MLPATTERNS_S3_ENDPOINT": s3_server.endpoint,
        "MLPATTERNS_S3_SECURE": "false",
        "MLPATTERNS_S3_BUCKET": BUCKET,
    }
    subprocess.run(
        [MLPATTERNS, "storage", "grant"],
        env={
            **os.environ, **env,
            "MLPATTERNS_S3_ACCESS_KEY": s3_server.access_key,
            "MLPATTERNS_S3_SECRET_KEY": s3_server.secret_key,
            "MLPATTERNS_GRANT_SERVING_ACCESS_KEY": access,
            "MLPATTERNS_GRANT_SERVING_SECRET_KEY": secret,
            "MLPATTERNS_GRANT_TRAINING_ACCESS_KEY": "training-" + secrets.token_hex(4),
            "MLPATTERNS_GRANT_TRAINING_SECRET_KEY": secrets.token_hex(16),
        },
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return {**env, "MLPATTERNS_S3_ACCESS_KEY": access, "MLPATTERNS_S3_SECRET_KEY": secret}


def rows_csv(count: int) -> bytes:
    lines = [",".join(["id", *FEATURES])]
    lines += [",".join([f"r{i}", *map(str, IRIS_ROWS[i % 3])]) for i in range(count)]
    return ("\n".join(lines) + "\n").encode()


def parts(s3_server: S3Server) -> list[str]:
    root = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)
    listed = root.list_objects(BUCKET, "batch/iris-predictions.parquet/", recursive=True)
    return [str(o.object_name) for o in listed if str(o.object_name).endswith(".parquet")]


def batch(model: Path, env: dict[str, str], home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            MLPATTERNS, "batch", "predict", "--model", str(model),
            "--input", f"s3://{BUCKET}/batch/iris-rows.csv", "--output", OUTPUT,
            "--chunk-rows", "5000", "--no-log-predictions",
        ],
        env={**os.environ, **env, "MLPATTERNS_HOME": str(home)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent,
    )  # fmt: skip


def interrupted(
    run: subprocess.Popen[str], s3_server: S3Server, parts_before: int, stop: signal.Signals
) -> subprocess.CompletedProcess[str]:
    """`run`, sent `stop` once it has written `parts_before` parts."""
    deadline = time.monotonic() + 120
    while len(parts(s3_server)) < parts_before and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(stop)
    out, err = run.communicate(timeout=60)
    return subprocess.CompletedProcess(run.args, run.returncode, out, err)


def test_rows_in_the_object_store_are_predicted_once_across_a_killed_run(
    s3_server: S3Server, trained: tuple[Path, str], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    subprocess.run(
        [MLPATTERNS, "fetch-model", "models:/iris@candidate", str(model)],
        env={**os.environ, "MLPATTERNS_HOME": str(trained[0])},
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    env = serving_user(s3_server)
    data = rows_csv(ROWS)
    root = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)
    root.put_object(BUCKET, "batch/iris-rows.csv", io.BytesIO(data), len(data))

    stopped = interrupted(batch(model, env, tmp_path / "home"), s3_server, 3, signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in " ".join(str(stopped.stderr).split())
    after_stop = len(parts(s3_server))
    assert 3 <= after_stop < ROWS // 5000, "the run ended before it could be stopped"
    # SIGKILL: dies between parts or in the middle of one
    interrupted(batch(model, env, tmp_path / "home"), s3_server, after_stop + 3, signal.SIGKILL)
    written = len(parts(s3_server))
    assert after_stop < written < ROWS // 5000, "the run ended before it could be killed"

    summary = finish(batch(model, env, tmp_path / "home"))
    assert summary["skipped"] == written * 5000  # whole parts only: an upload is all or nothing
    assert summary["predicted"] == ROWS - written * 5000
    assert summary["output"] == OUTPUT

    store = pafs.S3FileSystem(
        access_key=env["MLPATTERNS_S3_ACCESS_KEY"], secret_key=env["MLPATTERNS_S3_SECRET_KEY"],
        endpoint_override=s3_server.endpoint, scheme="http", region="us-east-1",
    )  # fmt: skip
    table = pq.read_table(OUTPUT.removeprefix("s3://"), filesystem=store)
    ids = table.column("id").to_pylist()
    assert len(ids) == ROWS
    assert set(ids) == {f"r{i}" for i in range(ROWS)}  # every id once, none twice
    labels = dict(zip(ids, table.column("label").to_pylist(), strict=True))
    assert [labels[f"r{i}"] for i in range(3)] == ["setosa", "virginica", "versicolor"]
    again = finish(batch(model, env, tmp_path / "home"))
    assert again["predicted"] == 0
