"""The model server's OpenAPI 3.0 document, built for the model it serves (its name and
width), published at `/openapi.json` for clients and for schema-driven fuzzing."""

from __future__ import annotations

from typing import Any

from mlpatterns.serving.inputs import FLOAT32_MAX
from mlpatterns.web import ERROR_SCHEMAS
from mlpatterns.web import openapi_answer as _answer

__all__ = ["ERROR", "openapi_document"]

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    meanings = {
        400: "Malformed request",
        404: "No such model or version",
        413: "Body too large",
        422: "Well-formed but not what the model takes",
        503: "Not ready",
    }
    return {str(s): _answer(meanings[s], ERROR) for s in statuses}


def openapi_document(
    model_name: str, n_features: int, version: str, input_name: str = "input"
) -> dict[str, Any]:
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    row = {
        "type": "array",
        "items": number,
        "minItems": n_features,
        "maxItems": n_features,
    }
    simple = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "array", "items": row, "minItems": 1}},
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "enum": [input_name]},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": ["FP32"]},
            "data": {"type": "array", "items": number},
        },
    }
    infer = {
        "type": "object",
        "required": ["inputs"],
        "properties": {"id": {"type": "string"}, "inputs": {"type": "array", "items": tensor}},
    }
    name = {
        "name": "model_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model_name]},
    }
    ver = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [version, version.split("-", 1)[0]]},
    }

    def get(description: str, *errors: int, params: list[Any] | None = None) -> dict[str, Any]:
        operation: dict[str, Any] = {"responses": {"200": _answer(description), **_errors(*errors)}}
        if params:
            operation["parameters"] = params
        return {"get": operation}

    def post(body: dict[str, Any], *errors: int, params: list[Any] | None = None) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": _answer("Predictions"), **_errors(*errors)},
        }
        if params:
            operation["parameters"] = params
        return {"post": operation}

    return {
        "openapi": "3.0.3",
        "info": {"title": f"mlpatterns model server: {model_name}", "version": version},
        "paths": {
            "/v2/health/live": get("Live"),
            "/v2/health/ready": get("Ready", 503),
            "/v2/models/{model_name}": get("Model metadata", 404, params=[name]),
            "/v2/models/{model_name}/ready": get("Model ready", 404, 503, params=[name]),
            "/v2/models/{model_name}/infer": post(infer, 400, 404, 413, 422, params=[name]),
            "/v2/models/{model_name}/versions/{model_version}/infer": post(
                infer, 400, 404, 413, 422, params=[name, ver]
            ),
            "/predict": post(simple, 400, 413, 422),
            "/predict/label": post(simple, 400, 413, 422),
            "/metadata": get("Model metadata"),
            "/health": get("Health", 503),
        },
        "components": {"schemas": ERROR_SCHEMAS},
    }
