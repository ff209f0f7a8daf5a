"""The gateway's own endpoints as an OpenAPI 3.0 document (`GET /-/openapi.json`), for
clients and for schema-driven fuzzing. Every other path is the model servers' API,
passed through: each model server publishes its own document."""

from __future__ import annotations

from typing import Any

from mlpatterns.web import ERROR_SCHEMAS, MAX_REQUEST_ID
from mlpatterns.web import openapi_answer as _answer

__all__ = ["gateway_openapi"]

ERROR = {"$ref": "#/components/schemas/Error"}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def gateway_openapi(service: str) -> dict[str, Any]:
    feedback = {
        "type": "object",
        "required": ["request_id", "outcome"],
        "properties": {
            "request_id": {
                "type": "string",
                "pattern": f"^[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}$",
            },
            "outcome": {
                "oneOf": [
                    {"type": "boolean"},
                    {"type": "number"},
                    {"type": "string", "minLength": 1, "maxLength": 200},
                ]
            },
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": f"mlpatterns gateway: {service}", "version": "1"},
        "paths": {
            "/-/health": {"get": {"responses": {"200": _answer("Live")}}},
            "/-/routes": {"get": {"responses": {"200": _answer("The route table in force")}}},
            "/-/metrics": {"get": {"responses": {"200": _text("Prometheus metrics")}}},
            "/-/reload": {
                "post": {
                    "responses": {
                        "200": _answer("Whether the ModelService changed"),
                        "403": _answer("Not from loopback and no valid token", ERROR),
                        "409": _answer("Started without a ModelService file", ERROR),
                    }
                }
            },
            "/feedback": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": feedback}},
                    },
                    "responses": {
                        "202": _answer("Recorded"),
                        "400": _answer("Not a feedback body", ERROR),
                        "404": _answer("This gateway records no feedback", ERROR),
                        "409": _answer("That request already has an outcome", ERROR),
                        "413": _answer("Body over 16 KiB", ERROR),
                    },
                }
            },
        },
        "components": {"schemas": ERROR_SCHEMAS},
    }
