# syntax=docker/dockerfile:1
# The local-path-provisioner's helper pods make and remove each volume's folder on the
# node: a shell, mkdir and rm, as root (the folders are the node's). The Debian base.
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
USER 0:0
