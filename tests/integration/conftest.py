"""Real servers for the integration tests, started once per run on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import tools_bin
from tests.support.dataplane import DATA_PLANES, data_plane_env
from tests.support.servers import S3Server, minio_server, redis_server
from tests.support.training import aliased_iris, stacked_iris, train


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real MinIO server, built by `hack/tools` from its Go module."""
    with minio_server(tools_bin() / "minio", tmp_path_factory.mktemp("minio")) as server:
        yield server


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A registry with one iris model; returns MLPATTERNS_HOME and the version."""
    home = tmp_path_factory.mktemp("home")
    [version] = train(home, {"dataset": "iris", "name": "iris"})
    return home, version


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server, from Debian's package (hack/system-deps installs it)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def aliased_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with iris@production (logreg), iris@candidate (random forest) and
    iris-stacked@production (a model of iris@production's probabilities)."""
    folder = tmp_path_factory.mktemp("embedded-home")
    aliased_iris(folder)
    stacked_iris(folder)
    return folder


@pytest.fixture(params=DATA_PLANES)
def data_plane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The gateway's data plane for a test that starts `serve gateway` (through its
    environment): each such test runs against both."""
    for name, value in data_plane_env(request.param).items():
        monkeypatch.setenv(name, value)
    return str(request.param)
