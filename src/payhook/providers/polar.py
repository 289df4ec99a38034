"""Polar: Standard Webhooks signatures, keyed with the dashboard secret's own UTF-8 bytes.

The dashboard secret is a raw string, not ``whsec_<base64>``: the standard libraries are given
``base64(secret)`` and decode it back, so the HMAC key is simply ``secret.encode()``. Headers,
signed content, listing and tolerance are those of Standard Webhooks (``standard.py``).

The event time is the body's ``timestamp`` (when the event happened; ``webhook-timestamp`` is
when this attempt was signed, which moves on every retry), else the signed timestamp.

Polar refunds carry tax separately: a refund's ``amount`` excludes the tax it returns
(``tax_amount``), and an order's ``refunded_amount`` excludes ``refunded_tax_amount``, while
``total_amount`` includes tax. Refunded figures are therefore counted tax included, so that a
full refund of a taxed order reads as fully refunded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError
from payhook.providers.base import iso_timestamp, parse_json_object, require_str
from payhook.providers.hmac import Signed, utf8_key
from payhook.providers.standard import SCHEME as STANDARD_SCHEME
from payhook.providers.standard import StandardWebhooksProvider, signed_message

SCHEME = dataclasses.replace(STANDARD_SCHEME, key=utf8_key)
_REFUND_EVENTS = ("refund.created", "refund.updated")


class PolarProvider(StandardWebhooksProvider):
    provider_type = "polar"
    scheme = SCHEME
    sample_event_types = ("order.paid", "order.refunded", "refund.created")

    def events(self, request: WebhookRequest, signed: Signed) -> list[VerifiedEvent]:
        msg_id, timestamp = signed_message(signed)
        body = parse_json_object(request.body)
        occurred = iso_timestamp(body.get("timestamp"))
        return [
            VerifiedEvent(
                event_id=msg_id,
                event_type=require_str(body, "type"),
                payload=request.body,
                occurred_at=occurred if occurred is not None else float(timestamp),
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        if webhook.event_type not in ("order.paid", "order.refunded", *_REFUND_EVENTS):
            return []
        data = parse_json_object(webhook.payload).get("data")
        if not isinstance(data, dict):
            raise PayloadError("Polar event has no data object")
        fields: dict[str, Any] = {}
        if webhook.event_type == "order.paid":
            kind, payment_id = PaymentEventKind.SUCCEEDED, require_str(data, "id", "data")
            fields["amount"] = _amount(data, "total_amount")
        elif webhook.event_type == "order.refunded":
            kind, payment_id = PaymentEventKind.REFUNDED, require_str(data, "id", "data")
            fields["refunded_total"] = _amount(data, "refunded_amount") + _amount(
                data, "refunded_tax_amount", 0
            )
            # Only a paid order can be refunded, so its total was captured.
            fields["captured_hint"] = _amount(data, "total_amount")
        else:
            if data.get("status") != "succeeded":
                return []  # pending, failed or canceled refunds have not returned any money
            kind, payment_id = PaymentEventKind.REFUNDED, require_str(data, "order_id", "data")
            fields["refund_id"] = require_str(data, "id", "data")
            fields["amount"] = _amount(data, "amount") + _amount(data, "tax_amount", 0)
        return [
            PaymentEvent.of(
                webhook,
                payment_id=payment_id,
                kind=kind,
                currency=normalize_currency(data.get("currency")),
                **fields,
            )
        ]


def _amount(data: dict[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key)
    if value is None and default is not None:
        return default
    return minor_amount(value)
