# syntax=docker/dockerfile:1
# Rancher's local-path-provisioner for the test node's PersistentVolumes (kind brings
# its own): the static binary hack/tools builds from the Go module proxy.
FROM scratch
COPY .build/bin/local-path-provisioner /local-path-provisioner
USER 65532:65532
ENTRYPOINT ["/local-path-provisioner"]
