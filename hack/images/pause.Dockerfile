# syntax=docker/dockerfile:1
# The pod sandbox of the test node (kind brings its own): Kubernetes' pause.c from
# the k8s.io/kubernetes module, compiled static by hack/images/build.
FROM scratch
COPY .build/bin/pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
