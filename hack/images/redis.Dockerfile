# syntax=docker/dockerfile:1
# Redis for the asynchronous queue, as Debian packages it: the image the chart runs
# where the public redis image cannot be pulled (`hack/images/build redis`).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
ENTRYPOINT ["redis-server"]
