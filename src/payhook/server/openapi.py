"""The OpenAPI 3.0 document the server publishes at ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import payhook
from payhook.service.ingest import STATUSES

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
            "description": STATUSES[200][1],
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
    }
    for status, (_, when) in STATUSES.items():
        if status not in (200, 405):  # 405: POST is what this operation is
            responses[str(status)] = _error(when)
    for status in sorted(set(rejection_statuses)):
        responses[str(status)] = _error(STATUSES[401][1])
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
