# syntax=docker/dockerfile:1
# The seldon image: Seldon Core's Python wrapper (seldon-core-microservice) serving a
# registry model with `mlpatterns.seldon.Model`, the predictors of a ModelService with
# spec.router seldon. Only the `seldon` extra is installed (seldon-core 1.17.1, the
# last Apache-2.0 release, and numpy 1), from .build/wheelhouse-seldon (the versions
# in uv.lock): build it with `hack/images/build seldon`. Seldon Core's operator sets
# the model's folder (PREDICTIVE_UNIT_PARAMETERS) and the ports in the environment.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MLPATTERNS_HOME=/var/lib/mlpatterns \
    PATH=/opt/mlpatterns/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN --mount=type=bind,source=.build/wheelhouse-seldon,target=/wheels \
    python3 -m venv /opt/mlpatterns \
 && /opt/mlpatterns/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
      --find-links /wheels "mlpatterns[seldon]" \
 && groupadd --gid 10001 mlpatterns \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin mlpatterns \
 && mkdir -p /var/lib/mlpatterns && chown 10001:10001 /var/lib/mlpatterns
USER 10001:10001
WORKDIR /var/lib/mlpatterns
ENTRYPOINT ["seldon-core-microservice", "mlpatterns.seldon.Model"]
CMD ["--service-type", "MODEL"]
