"""The object store's users, made by `mlpatterns storage grant` on a real MinIO: serving
reads the registry and writes only prediction logs and batch output; training writes
everything."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error

from tests.support.servers import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.attack]
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))


def put(client: Minio, key: str) -> None:
    client.put_object("granted", key, io.BytesIO(b"x"), 1)


def test_serving_reads_and_logs_training_writes(s3_server: S3Server) -> None:
    users = {role: (f"{role}-user", secrets.token_hex(16)) for role in ("serving", "training")}
    env = {
        **os.environ,
        "MLPATTERNS_S3_ENDPOINT": s3_server.endpoint,
        "MLPATTERNS_S3_ACCESS_KEY": s3_server.access_key,
        "MLPATTERNS_S3_SECRET_KEY": s3_server.secret_key,
        "MLPATTERNS_S3_SECURE": "false",
        "MLPATTERNS_S3_BUCKET": "granted",
    }
    for role, (access, secret) in users.items():
        env[f"MLPATTERNS_GRANT_{role.upper()}_ACCESS_KEY"] = access
        env[f"MLPATTERNS_GRANT_{role.upper()}_SECRET_KEY"] = secret
    for _ in range(2):  # the second run finds everything in place and changes nothing
        done = subprocess.run(
            [MLPATTERNS, "storage", "grant"], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert users["serving"][1] not in done.stdout + done.stderr

    def client(role: str) -> Minio:
        access, secret = users[role]
        return Minio(s3_server.endpoint, access, secret, secure=False)

    training, serving = client("training"), client("serving")
    put(training, "models/iris/1.0.0/model.onnx")
    assert serving.get_object("granted", "models/iris/1.0.0/model.onnx").read() == b"x"
    assert [o.object_name for o in serving.list_objects("granted", "models/", recursive=True)]
    put(serving, "logs/predictions/iris/v1/2026-12-06/10/part.jsonl")
    put(serving, "batch/iris-predictions.parquet/part-1.parquet")  # a batch job's output
    serving.remove_object("granted", "batch/iris-predictions.parquet/part-1.parquet")
    for key in ("models/iris/1.0.0/model.onnx", "aliases/iris/production"):
        with pytest.raises(S3Error) as refused:
            put(serving, key)
        assert refused.value.code == "AccessDenied"
    with pytest.raises(S3Error) as refused:
        serving.remove_object("granted", "models/iris/1.0.0/model.onnx")
    assert refused.value.code == "AccessDenied"
    with pytest.raises(S3Error) as refused:
        serving.make_bucket("another")
    assert refused.value.code == "AccessDenied"
