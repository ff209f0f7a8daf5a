# syntax=docker/dockerfile:1
# CoreDNS for the test node's cluster DNS (kind brings its own): the static binary
# hack/tools builds with the plugins cluster DNS needs.
FROM scratch
COPY .build/bin/coredns /coredns
USER 65532:65532
ENTRYPOINT ["/coredns"]
