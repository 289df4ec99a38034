"""Paddle Billing: ``Paddle-Signature: ts=<unix>;h1=<hex>[;h1=...]``.

HMAC-SHA256 hex over ``"{ts}:{body}"`` keyed with the notification secret as UTF-8. The header
is parsed as the official SDK parses it (an unknown key or a second ``=`` rejects the whole
header; the last ``ts`` counts; fragments without ``=`` are ignored), except that ``ts`` must be
ASCII digits where the SDK's ``int()`` also takes signs, spaces and underscores. The SDK's
tolerance is 5 s both ways, so that is the default here too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as _secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import (
    HmacKeys,
    HmacProvider,
    any_signature_matches,
    check_tolerance,
    dig,
    iso_timestamp,
    parse_json_object,
    require_str,
)

SIGNATURE_HEADER = "paddle-signature"
_DIGITS = re.compile(r"[0-9]+")
K = PaymentEventKind

_TRANSACTION_KINDS = {
    "transaction.created": K.PENDING,
    "transaction.ready": K.PENDING,
    "transaction.billed": K.PENDING,
    "transaction.paid": K.SUCCEEDED,
    "transaction.completed": K.SUCCEEDED,
    "transaction.payment_failed": K.FAILED,
    "transaction.canceled": K.CANCELED,
}
# A chargeback and its reversal are separate adjustments that only share the transaction, so
# the transaction id is the dispute id: the reversal then closes the dispute the chargeback opened.
_ADJUSTMENT_KINDS = {
    "refund": K.REFUNDED,
    "chargeback": K.DISPUTE_OPENED,
    "chargeback_reverse": K.DISPUTE_WON,
}


def paddle_signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.digest(secret.encode(), f"{timestamp}:".encode() + body, hashlib.sha256).hex()


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    raw_timestamp: str | None = None
    signatures: list[str] = []
    for item in header.split(";"):
        if "=" not in item:
            continue
        key, _, value = item.partition("=")
        if "=" in value:
            raise VerificationError("Paddle-Signature has a malformed entry")
        if key == "ts":
            raw_timestamp = value  # the last one counts, as in the SDK
        elif key == "h1":
            signatures.append(value)
        else:
            raise VerificationError("Paddle-Signature has an unrecognised key")
    if raw_timestamp is None:
        raise VerificationError("Paddle-Signature has no timestamp")
    if not _DIGITS.fullmatch(raw_timestamp):
        raise VerificationError("Paddle-Signature timestamp is not a unix time")
    try:
        # The signed text uses the number, not its spelling: "0169..." signs as "169...".
        timestamp = int(raw_timestamp)
    except ValueError as exc:  # more digits than int() converts
        raise VerificationError("Paddle-Signature timestamp is not a unix time") from exc
    if not signatures:
        raise VerificationError("Paddle-Signature has no h1 signature")
    return timestamp, signatures


def verify_paddle_signature(
    body: bytes, header: str | None, keys: HmacKeys, now: float, tolerance: int
) -> int:
    """Verify a Paddle-Signature header; returns its timestamp or raises VerificationError."""
    if not header:
        raise VerificationError("missing Paddle-Signature header")
    timestamp, received = parse_signature_header(header)
    if not any_signature_matches(keys.hexdigests(f"{timestamp}:".encode() + body), received):
        raise VerificationError("no Paddle signature matches")
    check_tolerance(timestamp, now, tolerance)
    return timestamp


class PaddleProvider(HmacProvider):
    type_name = "paddle"
    default_tolerance_seconds: ClassVar[int] = 5
    sample_event_types = (
        "transaction.completed",
        "transaction.paid",
        "transaction.payment_failed",
        "transaction.canceled",
        "adjustment.created",
    )

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        verify_paddle_signature(
            request.body,
            request.headers.get(SIGNATURE_HEADER),
            self.keys,
            self.clock(),
            self.tolerance_seconds,
        )
        event = parse_json_object(request.body)
        return [
            VerifiedEvent(
                event_id=require_str(event, "event_id"),
                event_type=require_str(event, "event_type"),
                payload=request.body,
                occurred_at=iso_timestamp(event.get("occurred_at")),
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        data = parse_json_object(webhook.payload).get("data")
        if not isinstance(data, dict):
            raise PayloadError("Paddle event has no data object")
        fields: dict[str, Any] = {}
        if webhook.event_type in _TRANSACTION_KINDS:
            kind = _TRANSACTION_KINDS[webhook.event_type]
            payment_id = require_str(data, "id", "data")
            total = dig(data, "details", "totals", "total")
            currency = data.get("currency_code") or dig(data, "details", "totals", "currency_code")
        elif webhook.event_type in ("adjustment.created", "adjustment.updated"):
            action_kind = _ADJUSTMENT_KINDS.get(str(data.get("action")))
            # Only an approved adjustment moved money; pending_approval may still be rejected.
            if action_kind is None or data.get("status") != "approved":
                return []
            kind = action_kind
            payment_id = require_str(data, "transaction_id", "data")
            total = dig(data, "totals", "total")
            currency = data.get("currency_code") or dig(data, "totals", "currency_code")
            if kind is K.REFUNDED:
                fields["refund_id"] = require_str(data, "id", "data")
            else:
                fields["dispute_id"] = payment_id
        else:
            return []
        return [
            PaymentEvent.of(
                webhook,
                payment_id=payment_id,
                kind=kind,
                amount=minor_amount(total) if total is not None else None,
                currency=normalize_currency(currency) if currency else None,
                **fields,
            )
        ]

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        event_type = event_type or self.sample_event_types[0]
        now = int(self.clock())
        body = json.dumps(sample_event(event_type, now), separators=(",", ":")).encode()
        signature = paddle_signature(self.config.secrets[0], now, body)
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                SIGNATURE_HEADER: f"ts={now};h1={signature}",
            },
        )


def _rid(prefix: str) -> str:
    return f"{prefix}_01{_secrets.token_hex(12)}"


def _iso(timestamp: int) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def sample_event(event_type: str, now: int, amount: int = 2900) -> dict[str, Any]:
    """A Paddle Billing notification shaped like the real thing (trimmed line items)."""
    txn = _rid("txn")
    totals = {
        "subtotal": str(amount - 240),
        "tax": "240",
        "total": str(amount),
        "grand_total": str(amount),
        "currency_code": "USD",
    }
    data: dict[str, Any]
    if event_type.startswith("transaction."):
        status = event_type.removeprefix("transaction.")
        data = {
            "id": txn,
            "status": {"payment_failed": "ready"}.get(status, status),
            "customer_id": _rid("ctm"),
            "currency_code": "USD",
            "origin": "web",
            "collection_mode": "automatic",
            "details": {"totals": totals},
            "created_at": _iso(now - 60),
            "updated_at": _iso(now),
        }
    elif event_type in ("adjustment.created", "adjustment.updated"):
        data = {
            "id": _rid("adj"),
            "action": "refund",
            "transaction_id": txn,
            "customer_id": _rid("ctm"),
            "reason": "requested_by_customer",
            "currency_code": "USD",
            "status": "approved",
            "totals": {
                "subtotal": totals["subtotal"],
                "tax": "240",
                "total": str(amount),
                "currency_code": "USD",
            },
            "created_at": _iso(now),
            "updated_at": _iso(now),
        }
    else:
        raise PayloadError(f"no Paddle sample for event type {event_type!r}")
    return {
        "event_id": _rid("evt"),
        "event_type": event_type,
        "occurred_at": _iso(now),
        "notification_id": _rid("ntf"),
        "data": data,
    }
