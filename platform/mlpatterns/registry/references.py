"""Model references as used across the platform.

models:/<name>/<version>     a registered version (X.Y.Z or the full X.Y.Z-data.split)
models:/<name>@<alias>       whatever the alias points at now
s3://<bucket>/<prefix>       a folder written by `fetch-model` or `build-context`
<path>                       the same, on the local disk
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALIAS",
    "NAME",
    "ModelRef",
    "PathRef",
    "ReferenceError",
    "RegistryRef",
    "S3Ref",
    "check_alias",
    "check_name",
    "parse_ref",
]

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ALIAS = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class ReferenceError(ValueError):
    pass


@dataclass(frozen=True)
class RegistryRef:
    name: str
    version: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class S3Ref:
    bucket: str
    prefix: str


@dataclass(frozen=True)
class PathRef:
    path: Path


ModelRef = RegistryRef | S3Ref | PathRef


def check_name(name: str, what: str = "model name") -> str:
    if not NAME.match(name):
        raise ReferenceError(
            f"invalid {what} {name!r}: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (at most 63 characters)"
        )
    return name


def check_alias(alias: str) -> str:
    if not ALIAS.match(alias):
        raise ReferenceError(
            f"invalid alias {alias!r}: start with a lowercase letter, then letters, digits or '-'"
        )
    return alias


def parse_ref(text: str) -> ModelRef:
    """Parse a model reference; the error says which forms are accepted. `name@alias`
    is short for `models:/name@alias` (a folder so named is `./name@alias`)."""
    if text.startswith("models:/"):
        body = text.removeprefix("models:/")
        if "@" in body:
            name, alias = body.split("@", 1)
            return RegistryRef(check_name(name), alias=check_alias(alias))
        if body.count("/") == 1:
            name, version = body.split("/")
            if version:
                return RegistryRef(check_name(name), version=version)
        raise ReferenceError(
            f"invalid model reference {text!r}: use models:/<name>/<version> "
            "or models:/<name>@<alias>"
        )
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not bucket:
            raise ReferenceError(f"invalid S3 reference {text!r}: use s3://<bucket>/<prefix>")
        return S3Ref(bucket, prefix.strip("/"))
    if "://" in text:
        raise ReferenceError(
            f"unsupported reference {text!r}: use models:/..., s3://... or a local folder"
        )
    name, at, alias = text.partition("@")
    if at and "/" not in text and NAME.match(name) and ALIAS.match(alias):
        return RegistryRef(
            name, alias=alias
        )  # `iris@production`: the registry's, as a CLI user means
    return PathRef(Path(text))
