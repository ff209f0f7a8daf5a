"""The S3/MinIO artifact store, through the `minio` client.

A single S3 PUT is atomic, so readers never see partial objects. Alias moves use
S3 conditional writes (`If-Match` on the ETag read, `If-None-Match: *` to create),
which MinIO and AWS S3 both honour.
"""

from __future__ import annotations

import io
from pathlib import Path

from minio import Minio
from minio.error import S3Error

from mlpatterns.registry.store import Blob, ConflictError, NotFoundError, StoreError, check_key
from mlpatterns.settings import Settings

__all__ = ["S3Store"]

_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict"}


class S3Store:
    """Objects under `prefix` in one bucket, created when missing unless told not to."""

    def __init__(
        self, client: Minio, bucket: str, prefix: str = "", *, create_bucket: bool = True
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        try:
            if create_bucket and not client.bucket_exists(bucket):
                client.make_bucket(bucket)
        except S3Error as error:
            raise StoreError(
                f"cannot use bucket {bucket!r}: {error.code}: {error.message}"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings, *, create_bucket: bool = True) -> S3Store:
        if settings.s3_endpoint is None:
            raise StoreError("MLPATTERNS_S3_ENDPOINT is not set")
        access = settings.s3_access_key.get_secret_value() if settings.s3_access_key else None
        secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
        client = Minio(
            settings.s3_endpoint,
            access_key=access,
            secret_key=secret,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
        return cls(client, settings.s3_bucket, create_bucket=create_bucket)

    @property
    def client(self) -> Minio:
        return self._client

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, key: str, error: S3Error) -> StoreError:
        if error.code in _MISSING:
            return NotFoundError(f"{key} not found in {self.describe()}")
        return StoreError(f"{key} in {self.describe()}: {error.code}: {error.message}")

    def put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(self.bucket, self._name(key), io.BytesIO(data), len(data))
        except S3Error as error:
            raise self._fail(key, error) from None

    def put_file(self, key: str, source: Path) -> None:
        try:
            self._client.fput_object(self.bucket, self._name(key), str(source))
        except S3Error as error:
            raise self._fail(key, error) from None

    def get(self, key: str) -> Blob:
        try:
            response = self._client.get_object(self.bucket, self._name(key))
        except S3Error as error:
            raise self._fail(key, error) from None
        try:
            return Blob(response.read(), response.headers.get("ETag", "").strip('"'))
        finally:
            response.close()
            response.release_conn()

    def get_file(self, key: str, destination: Path) -> None:
        # fget_object downloads to a `.part.minio` file and renames it when complete.
        try:
            self._client.fget_object(self.bucket, self._name(key), str(destination))
        except S3Error as error:
            raise self._fail(key, error) from None

    def exists(self, key: str) -> bool:
        try:
            self._client.stat_object(self.bucket, self._name(key))
        except S3Error as error:
            if error.code in _MISSING:
                return False
            raise self._fail(key, error) from None
        return True

    def list(self, prefix: str) -> list[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        folder = prefix.rstrip("/")
        root = f"{self.prefix}/" if self.prefix else ""
        wanted = self._name(folder) + prefix[len(folder) :] if folder else root
        objects = self._client.list_objects(self.bucket, prefix=wanted, recursive=True)
        return sorted(o.object_name[start:] for o in objects if o.object_name)

    def put_if(self, key: str, data: bytes, revision: str | None) -> None:
        headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": "application/json"}
        if revision is None:
            headers["If-None-Match"] = "*"
        else:
            headers["If-Match"] = f'"{revision}"'
        try:
            # put_object would send these as user metadata; the conditional
            # headers must reach S3 as they are, hence the request-level call.
            self._client._execute("PUT", self.bucket, self._name(key), body=data, headers=headers)
        except S3Error as error:
            if error.code in _CONFLICT:
                raise ConflictError(
                    f"{key} changed since it was read (expected revision {revision}); "
                    "read it again and retry"
                ) from None
            raise self._fail(key, error) from None
