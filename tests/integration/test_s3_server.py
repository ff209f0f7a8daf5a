"""The S3-compatible server the registry's tests use is a real one."""

from __future__ import annotations

import io

import pytest
from minio import Minio
from minio.error import S3Error

from tests.support.servers import S3Server

pytestmark = pytest.mark.integration


def test_minio_round_trip(s3_server: S3Server) -> None:
    client = Minio(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
    )
    client.make_bucket("roundtrip")
    payload = b"model bytes " * 1000
    client.put_object(
        "roundtrip", "models/iris/1.0.0/model.onnx", io.BytesIO(payload), len(payload)
    )
    response = client.get_object("roundtrip", "models/iris/1.0.0/model.onnx")
    try:
        assert response.read() == payload
    finally:
        response.close()
        response.release_conn()
    listed = [o.object_name for o in client.list_objects("roundtrip", recursive=True)]
    assert listed == ["models/iris/1.0.0/model.onnx"]


def test_minio_rejects_wrong_credentials(s3_server: S3Server) -> None:
    client = Minio(s3_server.endpoint, access_key="nobody", secret_key="wrong-secret", secure=False)
    with pytest.raises(S3Error, match="InvalidAccessKeyId"):
        client.list_buckets()
