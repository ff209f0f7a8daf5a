"""The image recipes, read: slim base as a build argument, a numeric non-root user,
only the role's extra installed from the wheelhouse with no index, nothing pulled by
tag `latest`. tests/node/ builds them with buildah and runs them on a real node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
IMAGES = Path(__file__).resolve().parents[2] / "hack" / "images"
ROLES = ("serving", "operator", "training")


@pytest.mark.parametrize("role", ROLES)
def test_image_recipe(role: str) -> None:
    text = (IMAGES / f"{role}.Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert stages == ["${PYTHON_IMAGE}"]  # the base is an argument: hack/images/build sets it
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert "--no-index" in text  # the wheelhouse from uv.lock, nothing fetched in the build
    assert ":latest" not in text
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users == ["10001:10001"]
    installed = set(re.findall(r'mlpatterns\[(\w+)\]|"\.\[(\w+)\]"', text))
    extras = {name for pair in installed for name in pair if name}
    assert extras == {role}
    assert 'ENTRYPOINT ["mlpatterns"]' in text


def test_the_build_context_is_only_the_package_and_what_the_build_stages() -> None:
    ignored = (IMAGES.parents[1] / ".dockerignore").read_text().split()
    assert ignored[0] == "*"
    allowed = {"!platform/", "!pipelines/", "!pyproject.toml", "!README.md"}
    assert {line for line in ignored if line.startswith("!")} == allowed | {
        "!.build/wheelhouse/",
        "!.build/bin/",
    }


@pytest.mark.parametrize("recipe", sorted(IMAGES.glob("*.Dockerfile")), ids=lambda p: p.stem)
def test_every_image_runs_as_a_numeric_user_or_its_package_s(recipe: Path) -> None:
    text = recipe.read_text()
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert len(users) == 1
    assert re.fullmatch(r"\d+:\d+", users[0]) or users[0] == "redis"
    assert ":latest" not in text
