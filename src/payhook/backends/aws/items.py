"""DynamoDB attribute values <-> webhook records, for the few types payhook stores.

Written by hand rather than with ``boto3.dynamodb.types``: numbers stay exact (ints as ints,
times as the float's shortest repr) and nothing goes through ``Decimal``.
"""

from __future__ import annotations

import zlib
from typing import Any

from payhook.backends.aws.errors import aws_call
from payhook.backends.aws.status_index import STATUS_SHARD, status_shard
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.errors import PayloadError, PayloadTooLargeError

Item = dict[str, dict[str, Any]]

# A DynamoDB item holds at most 400 KB; the body limit allows 1 MiB by default. JSON bodies
# that large compress far below the cap; small ones stay as received (readable in the console).
COMPRESS_ABOVE_BYTES = 64 * 1024
MAX_STORED_PAYLOAD_BYTES = 380 * 1024
PAYLOAD_ZLIB = "zlib"


#: DynamoDB's most keys per BatchGetItem.
BATCH_GET_LIMIT = 100


def batch_get(
    dynamodb: Any,
    table: str,
    keys: list[Item],
    what: str,
    *,
    max_rounds: int | None = None,
    **options: Any,
) -> list[Item]:
    """The items of ``table`` at ``keys`` that exist (in no particular order), read
    ``BATCH_GET_LIMIT`` keys per BatchGetItem with ``options`` (projection, consistency);
    each call's unprocessed keys are asked again, at most ``max_rounds`` times in all when
    given (what is still unprocessed then is left out). ``what`` names the read in errors."""
    items: list[Item] = []
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        request: dict[str, Any] = {
            table: {"Keys": keys[start : start + BATCH_GET_LIMIT], **options}
        }
        rounds = 0
        while request and (max_rounds is None or rounds < max_rounds):
            rounds += 1
            with aws_call(what):
                answer = dynamodb.batch_get_item(RequestItems=request)
            items += answer.get("Responses", {}).get(table, [])
            request = answer.get("UnprocessedKeys") or {}
    return items


def s(value: str) -> dict[str, Any]:
    return {"S": value}


def n(value: float) -> dict[str, Any]:
    return {"N": repr(value) if isinstance(value, float) else str(int(value))}


def number(attribute: dict[str, Any]) -> float:
    return float(attribute["N"])


def integer(attribute: dict[str, Any]) -> int:
    return int(attribute["N"])


def optional_n(item: Item, name: str) -> float | None:
    return number(item[name]) if name in item and "N" in item[name] else None


def optional_s(item: Item, name: str) -> str | None:
    return str(item[name]["S"]) if name in item and "S" in item[name] else None


def stored_payload(payload: bytes) -> tuple[bytes, str | None]:
    """The payload as stored: compressed when large, so bodies up to 1 MiB fit in an item."""
    if len(payload) <= COMPRESS_ABOVE_BYTES:
        return payload, None
    compressed = zlib.compress(payload, 6)
    if len(compressed) > MAX_STORED_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"payload of {len(payload)} bytes does not fit a DynamoDB item even compressed"
            f" ({len(compressed)} > {MAX_STORED_PAYLOAD_BYTES} bytes)"
        )
    return compressed, PAYLOAD_ZLIB


def webhook_item(webhook: StoredWebhook, expires_at: int) -> Item:
    payload, encoding = stored_payload(webhook.payload)
    item: Item = {
        "webhookId": s(webhook.webhook_id),
        "provider": s(webhook.provider),
        "providerType": s(webhook.provider_type),
        "eventId": s(webhook.event_id),
        "eventType": s(webhook.event_type),
        "status": s(str(webhook.status)),
        STATUS_SHARD: status_shard(str(webhook.status), webhook.webhook_id),  # the byStatus key
        "payload": {"B": payload},
        "receivedAt": n(webhook.received_at),
        "verified": {"BOOL": webhook.verified},
        "attempts": n(webhook.attempts),
        "expiresAt": n(expires_at),
    }
    if webhook.occurred_at is not None:
        item["occurredAt"] = n(webhook.occurred_at)
    if not webhook.id_signed:
        # The sparse byUnsignedEventId index: deliveries whose event id is not signed, so
        # that the same id with other bytes is found and flagged as a conflict.
        item["idSigned"] = {"BOOL": False}
        item["unsignedEventKey"] = s(unsigned_event_key(webhook.provider, webhook.event_id))
    if encoding is not None:
        item["payloadEncoding"] = s(encoding)
    if webhook.source != "webhook":  # fetched from the provider's events API
        item["source"] = s(webhook.source)
    return item


def webhook_from_item(item: Item) -> StoredWebhook:
    return StoredWebhook(
        webhook_id=item["webhookId"]["S"],
        provider=item["provider"]["S"],
        provider_type=item["providerType"]["S"],
        event_id=item["eventId"]["S"],
        event_type=item["eventType"]["S"],
        payload=_payload(item),
        received_at=number(item["receivedAt"]),
        status=WebhookStatus(item["status"]["S"]),
        occurred_at=optional_n(item, "occurredAt"),
        verified=bool(item.get("verified", {}).get("BOOL", True)),
        processed_at=optional_n(item, "processedAt"),
        attempts=integer(item["attempts"]) if "attempts" in item else 0,
        error=optional_s(item, "error"),
        id_signed=bool(item.get("idSigned", {}).get("BOOL", True)),
        conflict=bool(item.get("conflict", {}).get("BOOL", False)),
        source=item.get("source", {}).get("S", "webhook"),
    )


def unsigned_event_key(provider: str, event_id: str) -> str:
    return f"{provider}/{event_id}"


def _payload(item: Item) -> bytes:
    payload = bytes(item["payload"]["B"])
    encoding = optional_s(item, "payloadEncoding")
    if encoding is None:
        return payload
    if encoding != PAYLOAD_ZLIB:
        raise PayloadError(f"payload encoding {encoding!r} is not supported")
    return zlib.decompress(payload)
