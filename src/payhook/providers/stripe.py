"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]``, HMAC-SHA256 over ``"{t}.{body}"``.

The key is the whole signing secret as UTF-8, ``whsec_`` prefix included. Any ``v1`` may match
(several during secret rolling; several configured secrets likewise). Unlike the official SDK,
timestamps too far in the future are rejected as well as old ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as _secrets
from typing import Any

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import (
    HmacKeys,
    HmacProvider,
    any_signature_matches,
    check_tolerance,
    parse_json_object,
    require_str,
    unix_time,
)

SIGNATURE_HEADER = "stripe-signature"
_DIGITS = re.compile(r"[0-9]{1,12}")
K = PaymentEventKind


def stripe_signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.digest(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hex()


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not _DIGITS.fullmatch(value):
                raise VerificationError("Stripe-Signature timestamp is not a unix time")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise VerificationError("Stripe-Signature has no timestamp")
    if not signatures:
        raise VerificationError("Stripe-Signature has no v1 signature")
    return timestamp, signatures


def verify_stripe_signature(
    body: bytes, header: str | None, keys: HmacKeys, now: float, tolerance: int
) -> int:
    """Verify a Stripe signature header; returns its timestamp or raises VerificationError."""
    if not header:
        raise VerificationError("missing Stripe-Signature header")
    timestamp, received = parse_signature_header(header)
    if not any_signature_matches(keys.hexdigests(f"{timestamp}.".encode() + body), received):
        raise VerificationError("no Stripe signature matches")
    check_tolerance(timestamp, now, tolerance)
    return timestamp


class StripeProvider(HmacProvider):
    type_name = "stripe"
    sample_event_types = (
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.requires_action",
        "charge.refunded",
        "refund.created",
        "charge.dispute.created",
        "charge.dispute.closed",
    )

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        verify_stripe_signature(
            request.body,
            request.headers.get(SIGNATURE_HEADER),
            self.keys,
            self.clock(),
            self.tolerance_seconds,
        )
        event = parse_json_object(request.body)
        return [
            VerifiedEvent(
                event_id=require_str(event, "id"),
                event_type=require_str(event, "type"),
                payload=request.body,
                occurred_at=unix_time(event.get("created")),
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        event = parse_json_object(webhook.payload)
        obj = event.get("data", {}).get("object") if isinstance(event.get("data"), dict) else None
        if not isinstance(obj, dict):
            raise PayloadError("Stripe event has no data.object")
        kind = _kind(webhook.event_type, obj)
        if kind is None:
            return []
        currency = normalize_currency(obj["currency"]) if obj.get("currency") else None
        fields: dict[str, Any] = {}
        obj_type = obj.get("object")
        if obj_type == "payment_intent":
            payment_id = require_str(obj, "id", "data.object")
            amount = obj.get("amount_received") or obj.get("amount")
            fields["amount"] = minor_amount(amount) if amount is not None else None
        elif obj_type == "charge":
            payment_id = obj.get("payment_intent") or require_str(obj, "id", "data.object")
            if kind is K.REFUNDED:
                fields["refunded_total"] = minor_amount(obj.get("amount_refunded", 0))
                if obj.get("amount_captured") is not None:
                    fields["captured_hint"] = minor_amount(obj["amount_captured"])
            else:
                fields["amount"] = minor_amount(obj.get("amount_captured") or obj.get("amount", 0))
        elif obj_type == "refund":
            payment_id = obj.get("payment_intent") or require_str(obj, "charge", "data.object")
            fields["refund_id"] = require_str(obj, "id", "data.object")
            fields["amount"] = minor_amount(obj.get("amount", 0))
        elif obj_type == "dispute":
            payment_id = obj.get("payment_intent") or require_str(obj, "charge", "data.object")
            fields["dispute_id"] = require_str(obj, "id", "data.object")
            fields["amount"] = minor_amount(obj.get("amount", 0))
        else:
            return []
        if not isinstance(payment_id, str):
            raise PayloadError("Stripe object has no payment id")
        return [
            PaymentEvent.of(
                webhook,
                payment_id=payment_id,
                kind=kind,
                currency=currency,
                **fields,
            )
        ]

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        event_type = event_type or self.sample_event_types[0]
        now = int(self.clock())
        body = json.dumps(sample_event(event_type, now), separators=(",", ":")).encode()
        signature = stripe_signature(self.config.secrets[0], now, body)
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                SIGNATURE_HEADER: f"t={now},v1={signature}",
            },
        )


_INTENT_KINDS = {
    "payment_intent.created": K.PENDING,
    "payment_intent.processing": K.PENDING,
    "payment_intent.requires_action": K.REQUIRES_ACTION,
    "payment_intent.amount_capturable_updated": K.AUTHORIZED,
    "payment_intent.succeeded": K.SUCCEEDED,
    "payment_intent.payment_failed": K.FAILED,
    "payment_intent.canceled": K.CANCELED,
}


_DISPUTE_OUTCOMES = {"won": K.DISPUTE_WON, "warning_closed": K.DISPUTE_WON, "lost": K.DISPUTE_LOST}


def _kind(event_type: str, obj: dict[str, Any]) -> PaymentEventKind | None:
    if event_type in _INTENT_KINDS:
        return _INTENT_KINDS[event_type]
    if event_type == "charge.succeeded":
        return K.SUCCEEDED if obj.get("captured", True) else K.AUTHORIZED
    if event_type == "charge.captured":
        return K.SUCCEEDED
    if event_type == "charge.failed":
        return K.FAILED
    if event_type == "charge.refunded":
        # An uncaptured charge "refunded" is a released authorization, not money returned.
        return K.REFUNDED if obj.get("captured", True) else K.CANCELED
    if event_type in ("refund.created", "refund.updated", "charge.refund.updated"):
        # Only a settled refund counts: the ledger never un-counts one that later fails, and
        # the refund.updated that reports success carries the same refund id.
        return K.REFUNDED if obj.get("status") == "succeeded" else None
    if event_type == "charge.dispute.created":
        return K.DISPUTE_OPENED
    if event_type == "charge.dispute.closed":
        return _DISPUTE_OUTCOMES.get(str(obj.get("status")))
    return None


def _rid(prefix: str) -> str:
    return f"{prefix}_{_secrets.token_hex(12)}"


def sample_event(
    event_type: str, now: int, payment_id: str | None = None, amount: int = 2000
) -> dict[str, Any]:
    """A Stripe event shaped like the real thing (API version 2024-06-20)."""
    pi = payment_id or _rid("pi")
    charge = _rid("ch")
    intent = {
        "id": pi,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if event_type == "payment_intent.succeeded" else 0,
        "currency": "usd",
        "status": {
            "payment_intent.succeeded": "succeeded",
            "payment_intent.payment_failed": "requires_payment_method",
            "payment_intent.canceled": "canceled",
            "payment_intent.requires_action": "requires_action",
        }.get(event_type, "processing"),
        "latest_charge": charge,
        "livemode": False,
        "metadata": {"order_id": "6735"},
        "created": now - 5,
    }
    obj: dict[str, Any]
    if event_type.startswith("payment_intent."):
        obj = intent
    elif event_type == "charge.refunded":
        obj = {
            "id": charge,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": amount,
            "captured": True,
            "currency": "usd",
            "payment_intent": pi,
            "refunded": True,
            "status": "succeeded",
        }
    elif event_type in ("refund.created", "refund.updated"):
        obj = {
            "id": _rid("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge,
            "currency": "usd",
            "payment_intent": pi,
            "reason": "requested_by_customer",
            "status": "succeeded",
        }
    elif event_type.startswith("charge.dispute."):
        obj = {
            "id": _rid("dp"),
            "object": "dispute",
            "amount": amount,
            "charge": charge,
            "currency": "usd",
            "payment_intent": pi,
            "reason": "fraudulent",
            "status": "needs_response" if event_type.endswith("created") else "lost",
        }
    else:
        raise PayloadError(f"no Stripe sample for event type {event_type!r}")
    return {
        "id": _rid("evt"),
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
