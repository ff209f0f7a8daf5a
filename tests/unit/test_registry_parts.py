"""Pure parts of the registry: version numbers and references."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpatterns.registry.metadata import Signature, TensorSpec
from mlpatterns.registry.references import (
    PathRef,
    ReferenceError,
    RegistryRef,
    S3Ref,
    parse_ref,
)
from mlpatterns.registry.store import StoreError, check_key
from mlpatterns.registry.versions import Version, VersionError, next_version

pytestmark = pytest.mark.unit


def signature(n_features: int) -> Signature:
    return Signature(
        inputs=[TensorSpec(name="input", shape=[None, n_features], dtype="tensor(float)")],
        outputs=[TensorSpec(name="probabilities", shape=[None, 3], dtype="tensor(float)")],
    )


DATA = "d3b09efd" + "0" * 56


def test_first_version_of_a_release() -> None:
    version = next_version([], signature(4), release=0, data_sha256=DATA, split_label="strat20s42")
    assert str(version) == "0.1.0-d3b09efd.strat20s42"


def test_same_signature_bumps_logic_new_signature_bumps_interface() -> None:
    existing = [(Version.parse("0.1.0-d3b09efd.strat20s42"), signature(4))]
    same = next_version(existing, signature(4), release=0, data_sha256=DATA, split_label="x20s1")
    assert same.core == "0.1.1"
    existing.append((same, signature(4)))
    changed = next_version(existing, signature(5), release=0, data_sha256=DATA, split_label="x20s1")
    assert changed.core == "0.2.0"


def test_a_new_release_starts_at_one_zero() -> None:
    existing = [(Version.parse("0.3.7"), signature(4))]
    assert (
        next_version(existing, signature(4), release=1, data_sha256=DATA, split_label="a1s1").core
        == "1.1.0"
    )


@pytest.mark.parametrize("text", ["1.2", "v1.2.3", "1.2.3-nothex.split", "1.2.3-d3b09efd"])
def test_invalid_versions_say_the_expected_form(text: str) -> None:
    with pytest.raises(VersionError, match=r"expected X\.Y\.Z"):
        Version.parse(text)


def test_version_order_is_numeric() -> None:
    assert Version.parse("0.10.0") > Version.parse("0.9.9")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/iris/0.1.0", RegistryRef("iris", version="0.1.0")),
        (
            "models:/iris/0.1.0-d3b09efd.strat20s42",
            RegistryRef("iris", version="0.1.0-d3b09efd.strat20s42"),
        ),
        ("models:/iris@production", RegistryRef("iris", alias="production")),
        ("s3://bucket/models/iris", S3Ref("bucket", "models/iris")),
        ("./model-dir", PathRef(Path("./model-dir"))),
        ("iris@production", RegistryRef("iris", alias="production")),
        ("./iris@production", PathRef(Path("./iris@production"))),
        ("Iris@Prod", PathRef(Path("Iris@Prod"))),
    ],
)
def test_references(text: str, expected: object) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:/Iris/1.0.0", "invalid model name 'Iris'"),
        ("models:/iris", "use models:/<name>/<version>"),
        ("models:/iris@Prod", "invalid alias 'Prod'"),
        ("s3:///key", "use s3://<bucket>/<prefix>"),
        ("http://example/model", "unsupported reference"),
    ],
)
def test_invalid_references_say_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ReferenceError, match=message):
        parse_ref(text)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_store_keys_cannot_escape_the_root(key: str) -> None:
    with pytest.raises(StoreError, match="invalid store key"):
        check_key(key)
