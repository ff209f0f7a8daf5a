"""The ModelService's OpenAPI v3 schema for its CustomResourceDefinition, generated
from the pydantic models: structural (every node has a type, no $ref, nullable
instead of anyOf-null) and deterministic, so the committed CRD can be checked."""

from __future__ import annotations

import copy
from typing import Any

from mlpatterns.api.modelservice import Spec, Status

__all__ = ["PRINTER_COLUMNS", "crd", "openapi_v3_schema"]

_DROP = {"title", "default"}


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(definitions[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**target, **extra}, definitions)
    any_of = node.get("anyOf")
    if any_of and any(option == {"type": "null"} for option in any_of):
        options = [option for option in any_of if option != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        merged = options[0] if len(options) == 1 else {"anyOf": options}
        return _inline({**merged, **rest, "nullable": True}, definitions)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "const":
            result["enum"] = [value]
            continue
        result[key] = _inline(value, definitions)
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        # JSON Schema 2020 gives the bound as the exclusive value; OpenAPI 3.0 (what
        # Kubernetes reads) wants the bound plus a boolean
        if isinstance(result.get(exclusive), (int, float)) and not isinstance(
            result[exclusive], bool
        ):
            result[bound] = result[exclusive]
            result[exclusive] = True
    if "properties" in result and result.get("additionalProperties") is False:
        # Kubernetes forbids both together; a structural schema prunes unknown fields
        # itself, and kubectl's strict field validation reports them
        del result["additionalProperties"]
    if "enum" in result and "type" not in result:
        result["type"] = "string"
    if result.get("format") == "time":
        result["pattern"] = r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"
        del result["format"]
    return result


def _schema(model: type[Spec] | type[Status]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _inline(raw, raw.get("$defs", {}))  # type: ignore[no-any-return]


def openapi_v3_schema() -> dict[str, Any]:
    """The CRD's `openAPIV3Schema` for `mlpatterns.io/v1alpha1` ModelService."""
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _schema(Spec),
            "status": _schema(Status),
        },
    }


def _column(name: str, path: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "jsonPath": path, **extra}


PRINTER_COLUMNS = [
    _column("Pattern", ".spec.pattern"),
    _column("Versions", ".status.versionNames"),
    _column("Split", ".status.split"),
    _column("Shadow", ".status.shadow"),
    _column("Ready", ".status.ready"),
    _column("Age", ".metadata.creationTimestamp", "date"),
]


def crd() -> dict[str, Any]:
    """The ModelService CustomResourceDefinition."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "modelservices.mlpatterns.io"},
        "spec": {
            "group": "mlpatterns.io",
            "scope": "Namespaced",
            "names": {
                "plural": "modelservices",
                "singular": "modelservice",
                "kind": "ModelService",
                "listKind": "ModelServiceList",
                "shortNames": ["ms"],
            },
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_v3_schema()},
                }
            ],
        },
    }
