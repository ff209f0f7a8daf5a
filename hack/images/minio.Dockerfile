# syntax=docker/dockerfile:1
# MinIO, the binary hack/tools builds from the Go module proxy (static): the image
# the chart runs where quay.io cannot be reached (`hack/images/build minio`).
FROM scratch
COPY .build/bin/minio /usr/bin/minio
USER 10001:10001
ENTRYPOINT ["/usr/bin/minio"]
