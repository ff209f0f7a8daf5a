"""What a ModelService may ask of the cluster: whoever can create one must not be able
to run any image or read any Secret in its namespace through it.

The operator is configured with the image registries and the Secret names it allows
(the platform chart's `operator.allowedImageRegistries` and `operator.allowedSecrets`;
an empty list allows none). The images and Secrets the operator itself is configured
with (the serving image, the chart's storage and Redis Secrets) are trusted; only
what a spec names is checked. Pure: `problems` is the whole decision."""

from __future__ import annotations

from dataclasses import dataclass

from mlpatterns.api.modelservice import ModelService

__all__ = ["AdmissionPolicy", "image_allowed", "problems"]


@dataclass(frozen=True)
class AdmissionPolicy:
    registries: tuple[str, ...] = ()  # e.g. "registry.local" or "ghcr.io/acme"
    secrets: tuple[str, ...] = ()


def image_allowed(image: str, registries: tuple[str, ...]) -> bool:
    """`image` is under one of `registries`, on a path boundary: "registry.local"
    allows "registry.local/iris:1", not "registry.local.evil.io/iris:1"."""
    return any(image.startswith(registry.rstrip("/") + "/") for registry in registries)


def problems(service: ModelService, policy: AdmissionPolicy) -> list[str]:
    """Every image and Secret of the spec that the policy does not allow, with the fix."""
    found = []
    for version in service.spec.versions:
        if version.image is not None and not image_allowed(version.image, policy.registries):
            allowed = ", ".join(policy.registries) or "none"
            found.append(
                f"version {version.name!r}: image {version.image!r} is from a registry this "
                f"operator does not allow (allowed: {allowed}); ask an administrator to add "
                "it to operator.allowedImageRegistries"
            )
    for version in service.spec.versions:
        features = version.features
        if features is not None and features.redis is None:
            found.append(
                f"version {version.name!r}: features.{features.kind} reads a file of the "
                "embedded mode's machine, which no pod has; in a cluster give features.redis "
                "(hashes in the platform's Redis)"
            )
    named = []
    if service.spec.storage is not None:
        named.append(("spec.storage.secretName", service.spec.storage.secret_name))
    if service.spec.queue is not None and service.spec.queue.secret_name:
        named.append(("spec.queue.secretName", service.spec.queue.secret_name))
    for field, secret in named:
        if secret not in policy.secrets:
            allowed = ", ".join(policy.secrets) or "none"
            found.append(
                f"{field}: Secret {secret!r} is not one this operator hands to pods "
                f"(allowed: {allowed}); ask an administrator to add it to "
                "operator.allowedSecrets"
            )
    return found
