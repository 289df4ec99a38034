"""Razorpay: ``X-Razorpay-Signature``, hex HMAC-SHA256 of the raw body with the webhook secret.

The event id comes from the ``x-razorpay-event-id`` header, which the signature does not cover,
so it never decides identity: the webhook is identified by the digest of the body Razorpay
signed. The same body under a new id is a duplicate (a replay stores nothing); the same id with
other bytes is stored and flagged as a conflicting delivery, never dropped as a duplicate. The
header id is kept for display and search. Razorpay's scheme has no timestamp, hence no replay
window to check. A signed body without the header is authentic but unusable: PayloadError.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as _secrets
import string
from typing import Any

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, body_digest
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import (
    HmacKeys,
    HmacProvider,
    any_signature_matches,
    dig,
    parse_json_object,
    require_str,
    unix_time,
)

SIGNATURE_HEADER = "x-razorpay-signature"
EVENT_ID_HEADER = "x-razorpay-event-id"
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces, bounded
K = PaymentEventKind


def razorpay_signature(secret: str, body: bytes) -> str:
    return hmac.digest(secret.encode(), body, hashlib.sha256).hex()


def verify_razorpay_signature(body: bytes, header: str | None, keys: HmacKeys) -> None:
    """Raise VerificationError unless one configured secret signed the body."""
    if not header:
        raise VerificationError("missing X-Razorpay-Signature header")
    if not header.isascii():
        raise VerificationError("X-Razorpay-Signature is not hex")
    # Lower-case hex compared as text, as the official SDK compares it.
    if not any_signature_matches(keys.hexdigests(body), [header]):
        raise VerificationError("no Razorpay signature matches")


class RazorpayProvider(HmacProvider):
    type_name = "razorpay"
    sample_event_types = (
        "payment.captured",
        "payment.authorized",
        "payment.failed",
        "refund.processed",
        "payment.dispute.created",
        "payment.dispute.won",
        "payment.dispute.lost",
    )

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        body, headers = request.body, request.headers
        verify_razorpay_signature(body, headers.get(SIGNATURE_HEADER), self.keys)
        event_id = headers.get(EVENT_ID_HEADER)
        if not event_id or not _EVENT_ID.fullmatch(event_id):
            raise PayloadError("missing or malformed x-razorpay-event-id header")
        event = parse_json_object(body)
        return [
            VerifiedEvent(
                event_id,
                require_str(event, "event"),
                body,
                unix_time(event.get("created_at")),
                # The event id header is not signed: the signed body identifies the event.
                dedup_key=body_digest(body),
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        kind = _KINDS.get(webhook.event_type)
        if kind is None:
            return []
        event = parse_json_object(webhook.payload)
        payment = dig(event, "payload", "payment", "entity")
        fields: dict[str, Any] = {}
        if kind is K.REFUNDED:
            source = _entity(event, "refund")
            payment_id = require_str(source, "payment_id", "payload.refund.entity")
            fields["refund_id"] = require_str(source, "id", "payload.refund.entity")
            if isinstance(payment, dict):
                # The payment snapshot states the cumulative refund and, once captured, the
                # captured amount (Razorpay captures a payment whole).
                if payment.get("amount_refunded") is not None:
                    fields["refunded_total"] = minor_amount(payment["amount_refunded"])
                if payment.get("captured") is True and payment.get("amount") is not None:
                    fields["captured_hint"] = minor_amount(payment["amount"])
        elif kind in _DISPUTE_KINDS:
            source = _entity(event, "dispute")
            fields["dispute_id"] = require_str(source, "id", "payload.dispute.entity")
            payment_id = source.get("payment_id") or dig(payment, "id")
        else:
            source = _entity(event, "payment")
            payment_id = require_str(source, "id", "payload.payment.entity")
        if not isinstance(payment_id, str) or not payment_id:
            raise PayloadError("Razorpay event has no payment id")
        amount, currency = source.get("amount"), source.get("currency")
        return [
            PaymentEvent.of(
                webhook,
                payment_id=payment_id,
                kind=kind,
                amount=minor_amount(amount) if amount is not None else None,
                currency=normalize_currency(currency) if currency else None,
                **fields,
            )
        ]

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        event_type = event_type or self.sample_event_types[0]
        raw = json.dumps(sample_event(event_type, int(self.clock())), separators=(",", ":"))
        body = raw.encode()
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                SIGNATURE_HEADER: razorpay_signature(self.config.secrets[0], body),
                EVENT_ID_HEADER: _rid(""),
            },
        )


_KINDS = {
    "payment.authorized": K.AUTHORIZED,
    "payment.captured": K.SUCCEEDED,
    "payment.failed": K.FAILED,
    "refund.processed": K.REFUNDED,
    "payment.dispute.created": K.DISPUTE_OPENED,
    "payment.dispute.won": K.DISPUTE_WON,
    "payment.dispute.lost": K.DISPUTE_LOST,
}
_DISPUTE_KINDS = {K.DISPUTE_OPENED, K.DISPUTE_WON, K.DISPUTE_LOST}


def _entity(event: dict[str, Any], name: str) -> dict[str, Any]:
    entity = dig(event, "payload", name, "entity")
    if not isinstance(entity, dict):
        raise PayloadError(f"Razorpay event has no payload.{name}.entity")
    return entity


def _rid(prefix: str) -> str:
    body = "".join(_secrets.choice(string.ascii_letters + string.digits) for _ in range(14))
    return f"{prefix}_{body}" if prefix else body


def sample_event(event_type: str, now: int, amount: int = 50000) -> dict[str, Any]:
    """A Razorpay event shaped like the documented sample payloads (amounts in paise)."""
    payment_id = _rid("pay")
    captured = event_type not in ("payment.authorized", "payment.failed")
    payment: dict[str, Any] = {
        "id": payment_id,
        "entity": "payment",
        "amount": amount,
        "currency": "INR",
        "status": {"payment.authorized": "authorized", "payment.failed": "failed"}.get(
            event_type, "captured"
        ),
        "order_id": _rid("order"),
        "method": "card",
        "amount_refunded": 0,
        "captured": captured,
        "description": "Order 6735",
        "email": "gaurav.kumar@example.com",
        "contact": "+919876543210",
        "created_at": now - 5,
    }
    payload: dict[str, Any] = {"payment": {"entity": payment}}
    contains = ["payment"]
    if event_type == "refund.processed":
        payment.update(status="refunded", amount_refunded=amount, refund_status="full")
        refund = {
            "id": _rid("rfnd"),
            "entity": "refund",
            "amount": amount,
            "currency": "INR",
            "payment_id": payment_id,
            "status": "processed",
            "speed_processed": "normal",
            "created_at": now,
        }
        payload = {"refund": {"entity": refund}, "payment": {"entity": payment}}
        contains = ["refund", "payment"]
    elif event_type.startswith("payment.dispute."):
        dispute = {
            "id": _rid("disp"),
            "entity": "dispute",
            "payment_id": payment_id,
            "amount": amount,
            "currency": "INR",
            "amount_deducted": amount if event_type.endswith("lost") else 0,
            "reason_code": "chargeback",
            "status": event_type.rsplit(".", 1)[1].replace("created", "open"),
            "phase": "chargeback",
            "created_at": now,
        }
        payload["dispute"] = {"entity": dispute}
        contains = ["payment", "dispute"]
    elif event_type not in _KINDS:
        raise PayloadError(f"no Razorpay sample for event type {event_type!r}")
    return {
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": event_type,
        "contains": contains,
        "payload": payload,
        "created_at": now,
    }
