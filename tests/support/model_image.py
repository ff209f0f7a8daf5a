"""Build a model-in-image server: the folder `mlpatterns build-context` writes, on top
of this checkout's serving image, with Docker or with buildah as `images` builds the
platform's own. The result is labelled with the hash of the context and of the base,
so a rerun with neither changed finds it and skips the build.

    hack/images/build --context DIR --tag NAME:TAG [--kind NAME | --containerd SOCKET]
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.images import (
    LABEL,
    Image,
    _docker_available,
    _hash_files,
    _image_labels,
    _log,
    _run,
    archived,
    build,
    buildah,
)

__all__ = ["build_model_image"]


def build_model_image(context: Path, reference: str, kind_cluster: str | None = None) -> Image:
    """The image of `context` (a build context of `mlpatterns build-context`) as
    `reference`, its base the serving image built here first."""
    if not (context / "Dockerfile").is_file() or not (context / "model").is_dir():
        raise RuntimeError(f"{context} is not a build context of `mlpatterns build-context`")
    [serving] = build(["serving"], kind_cluster)
    digest = hashlib.sha256(serving.inputs.encode())
    _hash_files([context], digest, base=context)
    inputs = digest.hexdigest()
    if _docker_available():
        _run(["docker", "build", "--build-arg", f"BASE_IMAGE={serving.reference}",
              "-t", reference, str(context)])  # fmt: skip
        if kind_cluster:
            _run(["kind", "load", "docker-image", reference, "--name", kind_cluster])
        return Image("model", reference, inputs)
    labels = _image_labels(reference)
    if labels is None or labels.get(LABEL) != inputs:
        buildah(
            "bud", "--isolation=chroot", "--layers=false", "--quiet",
            f"--build-arg=BASE_IMAGE=localhost/{serving.reference}",
            f"--label={LABEL}={inputs}", f"--tag={reference}", str(context),
        )  # fmt: skip
        _log(f"built {reference} from {context}")
    return archived("model", reference, inputs)
