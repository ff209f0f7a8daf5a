# syntax=docker/dockerfile:1
# metrics-server for the test node's resource metrics (HorizontalPodAutoscalers): the
# static binary hack/tools builds from sigs.k8s.io/metrics-server.
FROM scratch
COPY .build/bin/metrics-server /metrics-server
USER 65532:65532
ENTRYPOINT ["/metrics-server"]
