"""The OpenAPI 3.0 document the server publishes at ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import payhook

_ERROR = {
    "type": "object",
    "required": ["error", "reason"],
    "properties": {"error": {"type": "string"}, "reason": {"type": "string"}},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(providers: Iterable[str], rejection_statuses: Iterable[int]) -> dict[str, Any]:
    names = sorted(providers)
    responses: dict[str, Any] = {
        "200": {
            "description": "Stored durably and scheduled for processing (or a duplicate).",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        "400": _error("Authentic, but the body cannot be used."),
        "404": _error("No provider of that name is configured."),
        "413": _error("The body is over the limit."),
        "503": _error("Storage unavailable; retry later."),
    }
    for status in sorted(set(rejection_statuses) | {401}):
        responses[str(status)] = _error("Verification failed; nothing was stored.")
    return {
        "openapi": "3.0.3",
        "info": {"title": "payhook", "version": payhook.__version__},
        "paths": {
            "/webhook/{provider}": {
                "post": {
                    "operationId": "receiveWebhook",
                    "summary": "Receive one provider delivery",
                    "parameters": [
                        {
                            "name": "provider",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": names}
                            if names
                            else {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {"schema": {}},
                            "application/x-www-form-urlencoded": {"schema": {}},
                            "*/*": {"schema": {}},
                        },
                    },
                    "responses": responses,
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "responses": {"200": {"description": "The server is up."}},
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR}},
    }
