"""Where a batch job reads and writes: local paths, s3:// objects, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest
from pydantic import SecretStr

from mlpatterns.serving.batch import BatchInputError, predict_batch
from mlpatterns.serving.batch.places import place
from mlpatterns.settings import Settings

pytestmark = pytest.mark.unit


def store_settings() -> Settings:
    return Settings(
        s3_endpoint="127.0.0.1:9",
        s3_secure=False,
        s3_access_key=SecretStr("reader"),
        s3_secret_key=SecretStr("secret"),
    )


def test_a_local_path_is_absolute_and_named_as_given(tmp_path: Path) -> None:
    (tmp_path / "out.parquet").mkdir()
    (tmp_path / "out.parquet" / "part-1.parquet").write_bytes(b"")
    (tmp_path / "out.parquet" / ".part-2.parquet").write_bytes(b"")
    found = place(tmp_path / "out.parquet")
    assert not found.remote
    assert found.suffix == ".parquet"
    assert [p.shown for p in found.children("part-*.parquet")] == [
        f"{tmp_path}/out.parquet/part-1.parquet"
    ]
    assert place(tmp_path / "missing").children("part-*") == []


def test_an_object_is_its_bucket_and_key_in_the_settings_store() -> None:
    found = place("s3://rows/batch/in.CSV", store_settings())
    assert found.remote
    assert isinstance(found.filesystem, pafs.S3FileSystem)
    assert (found.path, found.suffix, found.shown) == (
        "rows/batch/in.CSV",
        ".csv",
        "s3://rows/batch/in.CSV",
    )


@pytest.mark.parametrize("location", ["s3://", "s3://bucket", "s3:///key"])
def test_an_object_without_bucket_or_key_is_refused(location: str) -> None:
    with pytest.raises(BatchInputError, match=r"s3://<bucket>/<key>"):
        place(location, store_settings())


def test_an_object_without_the_store_settings_says_which_to_set() -> None:
    with pytest.raises(BatchInputError, match="MLPATTERNS_S3_ENDPOINT"):
        place("s3://rows/in.csv", Settings(s3_endpoint=None))


@pytest.mark.parametrize(
    ("source", "output"),
    [("s3://rows/in.csv", "predictions.db"), ("rows.csv", "s3://rows/out.csv")],
)
def test_objects_are_for_the_columnar_path_only(source: str, output: str) -> None:
    with pytest.raises(BatchInputError, match=r"columnar path only.*\.parquet"):
        predict_batch(None, source, output)  # type: ignore[arg-type]
