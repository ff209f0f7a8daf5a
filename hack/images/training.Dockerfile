# syntax=docker/dockerfile:1
# The training image: the training pipeline steps (kfp components) and the registry.
# Only the `training` extra is installed, so the image carries nothing it does not
# run (the catalog's "training code in serving" anti-pattern). Build from the
# repository root:  docker build -f hack/images/training.Dockerfile -t mlpatterns-training:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY platform/ platform/
COPY pipelines/ pipelines/
RUN pip wheel --wheel-dir /wheels ".[training]"

FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 MLPATTERNS_HOME=/var/lib/mlpatterns
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "mlpatterns[training]" \
 && groupadd --gid 10001 mlpatterns \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin mlpatterns \
 && mkdir -p /var/lib/mlpatterns && chown 10001:10001 /var/lib/mlpatterns
USER 10001:10001
WORKDIR /var/lib/mlpatterns
ENTRYPOINT ["mlpatterns"]
CMD ["train", "--help"]
