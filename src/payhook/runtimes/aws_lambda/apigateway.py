"""API Gateway REST (v1 proxy) events in, proxy responses out.

The signature covers the exact bytes, so the API should treat every media type as binary
(``binaryMediaTypes: ["*/*"]``): the body then arrives base64-encoded and byte-exact.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from payhook.core.model import WebhookRequest
from payhook.providers.base import ProviderResponse


class BodyTooLargeError(Exception):
    pass


class BadBodyError(Exception):
    pass


def _first_values(event: Mapping[str, Any], multi: str, single: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, items in (event.get(multi) or {}).items():
        if items:
            values.setdefault(key, str(items[0]))  # a repeated one: the first counts
    for key, value in (event.get(single) or {}).items():
        if value is not None:
            values.setdefault(key, str(value))
    return values


def provider_name(event: Mapping[str, Any]) -> str:
    return str((event.get("pathParameters") or {}).get("provider") or "")


def body_bytes(event: Mapping[str, Any], limit: int) -> bytes:
    """The raw body; BodyTooLargeError past ``limit`` bytes, BadBodyError if undecodable."""
    raw = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        try:
            body = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise BadBodyError("body is not valid UTF-8") from None
    else:
        if len(raw) > (limit + 2) // 3 * 4:  # too long before decoding anything
            raise BodyTooLargeError
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadBodyError("body is not valid base64") from None
    if len(body) > limit:
        raise BodyTooLargeError
    return body


def webhook_request(event: Mapping[str, Any], body: bytes) -> WebhookRequest:
    raw_headers = _first_values(event, "multiValueHeaders", "headers")
    headers: dict[str, str] = {}
    for key, value in raw_headers.items():
        headers.setdefault(key.lower(), value)
    query = _first_values(event, "multiValueQueryStringParameters", "queryStringParameters")
    context = event.get("requestContext") or {}
    host = context.get("domainName") or headers.get("host", "")
    path = context.get("path") or event.get("path") or ""
    scheme = headers.get("x-forwarded-proto", "https")
    url = f"{scheme}://{host}{path}" + (f"?{urlencode(query)}" if query else "")
    return WebhookRequest(
        body=body,
        headers=headers,
        query=query,
        method=str(event.get("httpMethod") or "POST").upper(),
        url=url,
    )


def response(answer: ProviderResponse, **headers: str) -> dict[str, Any]:
    try:
        text, encoded = answer.body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(answer.body).decode("ascii"), True
    extra = {name.title(): value for name, value in answer.headers}
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": answer.media_type, **extra, **headers},
        "body": text,
        "isBase64Encoded": encoded,
    }


def error(status: int, code: str, reason: str, **headers: str) -> dict[str, Any]:
    body = json.dumps({"error": code, "reason": reason}, separators=(",", ":")).encode()
    return response(ProviderResponse(status, body), **headers)
