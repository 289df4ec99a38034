"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]``, HMAC-SHA256 over ``"{t}.{body}"``.

The key is the whole signing secret as UTF-8, ``whsec_`` prefix included. Any ``v1`` may match
(several during secret rolling; several configured secrets likewise). Unlike the official SDK,
timestamps too far in the future are rejected as well as old ones.
"""

from __future__ import annotations

from typing import Any

from payhook.core.model import StoredWebhook
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError
from payhook.providers.base import EventsApiOptions, parse_json_object, require_str
from payhook.providers.events import EventFields
from payhook.providers.hmac import HmacProvider, HmacScheme, Pairs
from payhook.providers.samples import family_sample

SCHEME = HmacScheme(
    header="Stripe-Signature",
    signed="{timestamp}.{body}",
    listing=Pairs(",", timestamp_key="t", signature_key="v1", strip=True),
)


class StripeProvider(HmacProvider):
    Options = EventsApiOptions
    provider_type = "stripe"
    scheme = SCHEME
    event_fields = EventFields(time=("created",), time_format="unix")
    sample_event_types = (
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.requires_action",
        "payment_intent.processing",
        "charge.refunded",
        "refund.created",
        "charge.dispute.created",
        "charge.dispute.closed",
    )

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
            if kind is PaymentEventKind.REFUNDED:
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


_INTENT_KINDS = {
    "payment_intent.created": PaymentEventKind.PENDING,
    "payment_intent.processing": PaymentEventKind.PENDING,
    "payment_intent.requires_action": PaymentEventKind.REQUIRES_ACTION,
    "payment_intent.amount_capturable_updated": PaymentEventKind.AUTHORIZED,
    "payment_intent.succeeded": PaymentEventKind.SUCCEEDED,
    "payment_intent.payment_failed": PaymentEventKind.FAILED,
    "payment_intent.canceled": PaymentEventKind.CANCELED,
}


_DISPUTE_OUTCOMES = {
    "won": PaymentEventKind.DISPUTE_WON,
    "warning_closed": PaymentEventKind.DISPUTE_WON,
    "lost": PaymentEventKind.DISPUTE_LOST,
}


def _kind(event_type: str, obj: dict[str, Any]) -> PaymentEventKind | None:
    if event_type in _INTENT_KINDS:
        return _INTENT_KINDS[event_type]
    if event_type == "charge.succeeded":
        return (
            PaymentEventKind.SUCCEEDED if obj.get("captured", True) else PaymentEventKind.AUTHORIZED
        )
    if event_type == "charge.captured":
        return PaymentEventKind.SUCCEEDED
    if event_type == "charge.failed":
        return PaymentEventKind.FAILED
    if event_type == "charge.refunded":
        # An uncaptured charge "refunded" is a released authorization, not money returned.
        return PaymentEventKind.REFUNDED if obj.get("captured", True) else PaymentEventKind.CANCELED
    if event_type in ("refund.created", "refund.updated", "charge.refund.updated"):
        # Only a settled refund counts: the ledger never un-counts one that later fails, and
        # the refund.updated that reports success carries the same refund id.
        return PaymentEventKind.REFUNDED if obj.get("status") == "succeeded" else None
    if event_type == "charge.dispute.created":
        return PaymentEventKind.DISPUTE_OPENED
    if event_type == "charge.dispute.closed":
        return _DISPUTE_OUTCOMES.get(str(obj.get("status")))
    return None


def sample_event(
    event_type: str, now: int, payment_id: str | None = None, amount: int = 2000
) -> dict[str, Any]:
    """A Stripe event from its sample (``payhook/samples/stripe``): fresh ids, the given time,
    ``amount`` (also the whole refunded amount of ``charge.refunded``)."""
    values: dict[str, Any] = {"amount": amount, "refunded": amount}
    if payment_id is not None:
        values["payment"] = payment_id
    event: dict[str, Any] = family_sample("stripe", event_type, now, **values)
    return event


def stripe_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature of ``body`` at ``timestamp`` (tests and benchmarks sign with it)."""
    from payhook.providers.hmac import HmacEngine

    engine = HmacEngine(SCHEME, [secret], tolerance_seconds=0, clock=lambda: 0.0)
    header = engine.sign(body, timestamp=timestamp)["stripe-signature"]
    return header.rpartition("v1=")[2]
