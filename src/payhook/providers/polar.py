"""Polar: Standard Webhooks signatures, keyed with the dashboard secret's own UTF-8 bytes.

The dashboard secret is a raw string, not ``whsec_<base64>``: the standard libraries are given
``base64(secret)`` and decode it back, so the HMAC key is simply ``secret.encode()``.

Polar refunds carry tax separately: a refund's ``amount`` excludes the tax it returns
(``tax_amount``), and an order's ``refunded_amount`` excludes ``refunded_tax_amount``, while
``total_amount`` includes tax. Refunded figures are therefore counted tax included, so that a
full refund of a taxed order reads as fully refunded.
"""

from __future__ import annotations

import json
import secrets as _secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError
from payhook.providers.base import (
    HmacKeys,
    Provider,
    ProviderConfig,
    iso_timestamp,
    parse_json_object,
    require_str,
)
from payhook.providers.standard import standard_signature, verify_standard_signature

K = PaymentEventKind
_REFUND_EVENTS = ("refund.created", "refund.updated")


def _amount(data: dict[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key)
    if value is None and default is not None:
        return default
    return minor_amount(value)


class PolarProvider(Provider):
    type_name = "polar"
    sample_event_types = ("order.paid", "order.refunded", "refund.created")

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        self.keys = [secret.encode() for secret in config.secrets]
        self.hmac_keys = HmacKeys(self.keys)

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        msg_id, timestamp = verify_standard_signature(
            request, self.hmac_keys, self.clock(), self.tolerance_seconds
        )
        body = parse_json_object(request.body)
        # The body's timestamp is when the event happened; webhook-timestamp is when this
        # attempt was signed, which moves on every retry.
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
            kind, payment_id = K.SUCCEEDED, require_str(data, "id", "data")
            fields["amount"] = _amount(data, "total_amount")
        elif webhook.event_type == "order.refunded":
            kind, payment_id = K.REFUNDED, require_str(data, "id", "data")
            fields["refunded_total"] = _amount(data, "refunded_amount") + _amount(
                data, "refunded_tax_amount", 0
            )
            # Only a paid order can be refunded, so its total was captured.
            fields["captured_hint"] = _amount(data, "total_amount")
        else:
            if data.get("status") != "succeeded":
                return []  # pending, failed or canceled refunds have not returned any money
            kind, payment_id = K.REFUNDED, require_str(data, "order_id", "data")
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

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        event_type = event_type or self.sample_event_types[0]
        if event_type not in self.sample_event_types:
            raise PayloadError(f"no Polar sample for event type {event_type!r}")
        now = int(self.clock())
        order_id = str(uuid.uuid4())
        data: dict[str, Any]
        if event_type == "refund.created":
            data = {"id": str(uuid.uuid4()), "status": "succeeded", "order_id": order_id}
            data |= {"amount": 2000, "tax_amount": 0, "currency": "usd"}
        else:
            refunded = 2000 if event_type == "order.refunded" else 0
            data = {"id": order_id, "status": "refunded" if refunded else "paid", "paid": True}
            data |= {"total_amount": 2000, "refunded_amount": refunded, "currency": "usd"}
        body = json.dumps(
            {
                "type": event_type,
                "timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
                "data": data,
            },
            separators=(",", ":"),
        ).encode()
        msg_id = f"msg_{_secrets.token_hex(12)}"
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(now),
                "webhook-signature": standard_signature(self.keys[0], msg_id, now, body),
            },
        )
