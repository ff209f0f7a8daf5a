"""The image recipes, checked without Docker (absent here): multi-stage, slim base,
a numeric non-root user, only the role's extra installed, nothing pulled by tag
`latest`. tests/integration/test_images.py installs each role as the recipe does."""

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
    assert len(stages) == 2  # build wheels, then a clean runtime stage
    assert "python:3.11-slim" in text
    assert ":latest" not in text
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users == ["10001:10001"]
    installed = set(re.findall(r'mlpatterns\[(\w+)\]|"\.\[(\w+)\]"', text))
    extras = {name for pair in installed for name in pair if name}
    assert extras == {role}
    assert 'ENTRYPOINT ["mlpatterns"]' in text


def test_the_build_context_is_only_the_package() -> None:
    ignored = (IMAGES.parents[1] / ".dockerignore").read_text().split()
    assert ignored[0] == "*"
    assert {"!platform/", "!pipelines/", "!pyproject.toml"} <= set(ignored)
