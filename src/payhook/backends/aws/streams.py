"""DynamoDB stream records -> audit changes and the payment events to publish.

The audit data matches what the embedded backend's triggers record: webhook ids, types and
status; payment status, currency and integer amounts. Never the payload, never a float.
A record is told apart by its keys (moto's records carry no ``eventSourceARN``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payhook.core.audit import Change
from payhook.errors import ConfigError, PayloadError

_ACTIONS = {"INSERT": "insert", "MODIFY": "modify", "REMOVE": "remove"}
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"


@dataclass(frozen=True, slots=True)
class StreamChange:
    """What one stream record means. ``change`` is None when the audit trail ignores it."""

    source_id: str
    change: Change | None
    publish: tuple[dict[str, Any], ...] = ()


def _str(image: Mapping[str, Any], name: str) -> str | None:
    value = image.get(name)
    if value is None or "NULL" in value:
        return None
    return str(value["S"])


def _int(image: Mapping[str, Any], name: str) -> int:
    return int(image[name]["N"])


def _webhook_data(image: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "provider": _str(image, "provider"),
        "eventId": _str(image, "eventId"),
        "eventType": _str(image, "eventType"),
        "status": _str(image, "status"),
    }


def _payment_data(image: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": _str(image, "status"),
        "amount": _int(image, "amount"),
        "currency": _str(image, "currency"),
        "amountRefunded": _int(image, "amountRefunded"),
        "version": _int(image, "version"),
    }


def _published(image: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    text = _str(image or {}, "publishedEvents")
    events = json.loads(text) if text else []
    if not isinstance(events, list):
        raise PayloadError("publishedEvents is not a JSON list")
    return events


def _webhook(
    action: str, new: Mapping[str, Any], old: Mapping[str, Any], expired: bool
) -> Change | None:
    key = _str(new or old, "webhookId") or ""
    if action == "remove":
        data = _webhook_data(old)
        if expired:  # deleted by the TTL, not by a person
            data["expired"] = True
        return Change("webhook", key, action, data)
    data = _webhook_data(new)
    if action == "modify":
        if _str(old, "status") == data["status"]:
            return None  # attempts, error or enqueuedAt noted: not an audited change
        data["previousStatus"] = _str(old, "status")
    return Change("webhook", key, action, data)


def _payment(action: str, new: Mapping[str, Any], old: Mapping[str, Any]) -> Change | None:
    image = new or old
    key = f"{_str(image, 'provider')}/{_str(image, 'paymentId')}"
    if action == "remove":
        return Change("payment", key, action, _payment_data(old))
    data = _payment_data(new)
    if action == "modify":
        if _int(old, "version") == data["version"]:
            return None
        data["previousStatus"] = _str(old, "status")
    return Change("payment", key, action, data)


def read_record(record: Mapping[str, Any]) -> StreamChange:
    """Interpret one Lambda DynamoDB stream record (webhooks or payments table)."""
    event_id = str(record.get("eventID") or "")
    if not event_id:
        raise PayloadError("stream record without an eventID")
    try:
        stream = record["dynamodb"]
        action = _ACTIONS[record["eventName"]]
        keys = stream["Keys"]
        new, old = stream.get("NewImage") or {}, stream.get("OldImage") or {}
        if "webhookId" in keys:
            source_id = f"webhook:{event_id}"
            change = _webhook(action, new, old, expired=_is_ttl(record))
            return StreamChange(source_id, _with_source(change, source_id))
        if "paymentId" in keys and "provider" in keys:
            source_id = f"payment:{event_id}"
            change = _payment(action, new, old)
            seen = {e.get("id") for e in _published(old)}
            fresh = tuple(e for e in _published(new) if e.get("id") not in seen)
            return StreamChange(source_id, _with_source(change, source_id), fresh)
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"stream record {event_id}: malformed ({type(exc).__name__})") from exc
    raise ConfigError(
        f"stream record {event_id}: got keys {sorted(keys)}, expected a webhooks or payments key"
    )


def _is_ttl(record: Mapping[str, Any]) -> bool:
    identity = record.get("userIdentity") or {}
    return bool(identity.get("principalId") == _TTL_PRINCIPAL)


def _with_source(change: Change | None, source_id: str) -> Change | None:
    if change is None:
        return None
    return Change(change.entity, change.entity_key, change.action, change.data, source_id)
