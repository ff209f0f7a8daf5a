# syntax=docker/dockerfile:1
# The serving image: the model server, preprocess server, async API and worker, batch job and gateway.
# Only the `serving` extra is installed, so the image carries nothing it does not
# run (the catalog's "training code in serving" anti-pattern). Its packages come
# from .build/wheelhouse (the versions in uv.lock), so the build needs no network:
# build it with `hack/images/build serving`, which makes the wheelhouse first.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}
# the gateway forwards with its compiled data plane (dataplane/, static; `hack/dataplane`)
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MLPATTERNS_HOME=/var/lib/mlpatterns \
    PATH=/opt/mlpatterns/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    MLPATTERNS_GATEWAY_DATA_PLANE=compiled
COPY .build/bin/mlpatterns-dataplane /usr/local/bin/mlpatterns-dataplane
RUN --mount=type=bind,source=.build/wheelhouse,target=/wheels \
    python3 -m venv /opt/mlpatterns \
 && /opt/mlpatterns/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
      --find-links /wheels "mlpatterns[serving]" \
 && groupadd --gid 10001 mlpatterns \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin mlpatterns \
 && mkdir -p /var/lib/mlpatterns && chown 10001:10001 /var/lib/mlpatterns
USER 10001:10001
WORKDIR /var/lib/mlpatterns
ENTRYPOINT ["mlpatterns"]
CMD ["serve", "model", "--help"]
