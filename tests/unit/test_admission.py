"""The operator's admission policy: which images and Secrets a spec may name."""

from __future__ import annotations

from typing import Any

import pytest

from mlpatterns.api.load import parse_model_service
from mlpatterns.operator.policy import AdmissionPolicy, image_allowed, problems

pytestmark = [pytest.mark.unit, pytest.mark.attack]


def spec(**extra: Any) -> Any:
    return parse_model_service(
        {
            "apiVersion": "mlpatterns.io/v1alpha1",
            "kind": "ModelService",
            "metadata": {"name": "iris"},
            "spec": {
                "versions": [
                    {"name": "a", "model": {"uri": "models:/iris@production"}},
                    {"name": "b", "image": "registry.local/mlpatterns/iris:1.0.0"},
                ],
                **extra,
            },
        }
    )


def test_images_are_allowed_on_a_path_boundary() -> None:
    allowed = ("registry.local", "ghcr.io/acme/")
    assert image_allowed("registry.local/iris:1", allowed)
    assert image_allowed("ghcr.io/acme/iris@sha256:00", allowed)
    assert not image_allowed("registry.local.evil.io/iris:1", allowed)
    assert not image_allowed("ghcr.io/acmeevil/iris:1", allowed)
    assert not image_allowed("iris:1", allowed)
    assert not image_allowed("registry.local/iris:1", ())  # an empty list allows none


def test_a_spec_within_the_policy_has_no_problem() -> None:
    policy = AdmissionPolicy(registries=("registry.local",), secrets=("s3", "redis"))
    named = spec(storage={"secretName": "s3"}, queue={"secretName": "redis"})
    assert problems(named, policy) == []


def test_every_refusal_says_what_and_how_to_fix_it() -> None:
    named = spec(storage={"secretName": "db-root"}, queue={"secretName": "redis"})
    found = problems(named, AdmissionPolicy(secrets=("redis",)))
    assert found == [
        "version 'b': image 'registry.local/mlpatterns/iris:1.0.0' is from a registry this "
        "operator does not allow (allowed: none); ask an administrator to add it to "
        "operator.allowedImageRegistries",
        "spec.storage.secretName: Secret 'db-root' is not one this operator hands to pods "
        "(allowed: redis); ask an administrator to add it to operator.allowedSecrets",
    ]
