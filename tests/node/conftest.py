"""A real node for each test module marked `node`: started, used, stopped, and the
machine checked to be as it was found (a teardown error fails the run otherwise).

Each module gets its own cluster (about 15 seconds to start), so no test depends on
what another module left behind; only one real node can be up on a machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.images import Image, build, import_into_containerd
from tests.support.machine import differences, machine_state
from tests.support.netguard import NodeNetwork
from tests.support.testcluster import ANOTHER_RUN_WAIT, RealCluster, make_way
from tests.support.walkthrough import (
    Walkthrough,
    fetched_model,
    install_platform,
    register_models,
)

# what the platform chart runs, built from the project's Dockerfiles
PLATFORM_IMAGES = ("serving", "operator", "redis", "minio")


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    make_way(NodeNetwork(), wait=ANOTHER_RUN_WAIT)
    before = machine_state()
    cluster = RealCluster(folder=tmp_path_factory.mktemp("real-node"), die_with_parent=True)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        changed = differences(before, machine_state())
        assert not changed, f"the node left the machine changed: {json.dumps(changed, indent=2)}"


@pytest.fixture(scope="module")
def node_env(real_cluster: RealCluster) -> dict[str, str]:
    return real_cluster.plane.tool_environment()


@pytest.fixture(scope="module")
def platform_images(real_cluster: RealCluster) -> dict[str, Image]:
    """The platform's images, built (or found in the cache) and imported into the node."""
    images = build(PLATFORM_IMAGES)
    import_into_containerd(real_cluster.node.containerd_socket, images)
    return {image.role: image for image in images}


@pytest.fixture(scope="module")
def walkthrough(
    real_cluster: RealCluster, node_env: dict[str, str], platform_images: dict[str, Image]
) -> Walkthrough:
    """The platform chart installed on this module's node, as the README installs it."""
    walk = Walkthrough(real_cluster, node_env)
    install_platform(walk, platform_images)
    return walk


@pytest.fixture(scope="module")
def models(walkthrough: Walkthrough, tmp_path_factory: pytest.TempPathFactory) -> None:
    """iris@production and iris@candidate in the chart's MinIO."""
    register_models(walkthrough, tmp_path_factory.mktemp("user-home"))


@pytest.fixture(scope="module")
def production_model(
    walkthrough: Walkthrough, models: None, tmp_path_factory: pytest.TempPathFactory
) -> bytes:
    """iris@production's whole pipeline, fetched from the chart's MinIO as a pod does."""
    return fetched_model(walkthrough, "models:/iris@production", tmp_path_factory.mktemp("fetched"))


@pytest.fixture
def applied(walkthrough: Walkthrough, models: None) -> Iterator[list[str]]:
    """The ModelServices a test applies, removed after it."""
    names: list[str] = []
    yield names
    for name in names:
        walkthrough.kubectl("delete", "modelservice", name, "--wait=true", "--timeout=120s")
