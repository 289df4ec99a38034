"""Razorpay: ``X-Razorpay-Signature``, hex HMAC-SHA256 of the raw body with the webhook secret.

The lower-case hex is compared as text, as the official SDK compares it. The event id comes
from the ``x-razorpay-event-id`` header, which the signature does not cover, so it never decides
identity: the webhook is identified by the digest of the body Razorpay signed. The same body
under a new id is a duplicate (a replay stores nothing); the same id with other bytes is stored
and flagged as a conflicting delivery, never dropped as a duplicate. The header id is kept for
display and search. Razorpay's scheme has no timestamp, hence no replay window to check. A
signed body without the header is authentic but unusable: PayloadError.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, body_digest
from payhook.core.money import minor_amount
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError
from payhook.providers.base import dig, parse_json_object, require_str, unix_time
from payhook.providers.events import DISPUTE_KINDS, payment_event
from payhook.providers.hmac import HmacProvider, HmacScheme, Signed

SCHEME = HmacScheme(header="X-Razorpay-Signature")
EVENT_ID_HEADER = "x-razorpay-event-id"
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces, bounded


class RazorpayProvider(HmacProvider):
    provider_type = "razorpay"
    scheme = SCHEME
    sample_event_types = (
        "payment.captured",
        "payment.authorized",
        "payment.failed",
        "refund.processed",
        "payment.dispute.created",
        "payment.dispute.won",
        "payment.dispute.lost",
    )

    def events(self, request: WebhookRequest, signed: Signed) -> list[VerifiedEvent]:
        event_id = request.headers.get(EVENT_ID_HEADER)
        if not event_id or not _EVENT_ID.fullmatch(event_id):
            raise PayloadError("missing or malformed x-razorpay-event-id header")
        event = parse_json_object(request.body)
        return [
            VerifiedEvent(
                event_id,
                require_str(event, "event"),
                request.body,
                unix_time(event.get("created_at")),
                # The event id header is not signed: the signed body identifies the event.
                dedup_key=body_digest(request.body),
            )
        ]

    def sample_headers(self, event_type: str, body: bytes) -> dict[str, str]:
        return {EVENT_ID_HEADER: secrets.token_hex(7)}  # 14 characters, as Razorpay's ids

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        kind = _KINDS.get(webhook.event_type)
        if kind is None:
            return []
        event = parse_json_object(webhook.payload)
        payment = dig(event, "payload", "payment", "entity")
        fields: dict[str, Any] = {}
        if kind is PaymentEventKind.REFUNDED:
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
        elif kind in DISPUTE_KINDS:
            source = _entity(event, "dispute")
            fields["dispute_id"] = require_str(source, "id", "payload.dispute.entity")
            payment_id = source.get("payment_id") or dig(payment, "id")
        else:
            source = _entity(event, "payment")
            payment_id = require_str(source, "id", "payload.payment.entity")
        if not isinstance(payment_id, str) or not payment_id:
            raise PayloadError("Razorpay event has no payment id")
        amount, currency = source.get("amount"), source.get("currency")
        return payment_event(webhook, payment_id, kind, amount=amount, currency=currency, **fields)


_KINDS = {
    "payment.authorized": PaymentEventKind.AUTHORIZED,
    "payment.captured": PaymentEventKind.SUCCEEDED,
    "payment.failed": PaymentEventKind.FAILED,
    "refund.processed": PaymentEventKind.REFUNDED,
    "payment.dispute.created": PaymentEventKind.DISPUTE_OPENED,
    "payment.dispute.won": PaymentEventKind.DISPUTE_WON,
    "payment.dispute.lost": PaymentEventKind.DISPUTE_LOST,
}


def _entity(event: dict[str, Any], name: str) -> dict[str, Any]:
    entity = dig(event, "payload", name, "entity")
    if not isinstance(entity, dict):
        raise PayloadError(f"Razorpay event has no payload.{name}.entity")
    return entity
