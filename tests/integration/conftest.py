"""Real servers for the integration tests, started once per run on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.controlplane import tools_bin
from tests.support.servers import S3Server, minio_server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real MinIO server, built by `hack/tools` from its Go module."""
    with minio_server(tools_bin() / "minio", tmp_path_factory.mktemp("minio")) as server:
        yield server
