"""Paddle Billing: ``Paddle-Signature: ts=<unix>;h1=<hex>[;h1=...]``.

HMAC-SHA256 hex over ``"{ts}:{body}"`` keyed with the notification secret as UTF-8. The header
is parsed as the official SDK parses it (an unknown key or a second ``=`` rejects the whole
header; the last ``ts`` counts; fragments without ``=`` are ignored), except that ``ts`` must be
ASCII digits where the SDK's ``int()`` also takes signs, spaces and underscores. The signed text
uses the number, not its spelling: ``ts=0169...`` signs as ``169...``, as in the SDK. The SDK's
tolerance is 5 s both ways, so that is the default here too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from payhook.core.model import StoredWebhook
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError
from payhook.providers.base import EventsApiOptions, dig, parse_json_object, require_str
from payhook.providers.events import EventFields, payment_event
from payhook.providers.hmac import HmacProvider, HmacScheme, Pairs

SCHEME = HmacScheme(
    header="Paddle-Signature",
    signed="{timestamp}:{body}",
    listing=Pairs(";", timestamp_key="ts", signature_key="h1", strict=True),
)


class PaddleProvider(HmacProvider):
    Options = EventsApiOptions
    provider_type = "paddle"
    scheme = SCHEME
    event_fields = EventFields("event_id", "event_type", ("occurred_at",))
    default_tolerance_seconds: ClassVar[int] = 5
    sample_event_types = (
        "transaction.completed",
        "transaction.paid",
        "transaction.payment_failed",
        "transaction.canceled",
        "adjustment.created",
        "adjustment.updated",
    )

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
            if kind is PaymentEventKind.REFUNDED:
                fields["refund_id"] = require_str(data, "id", "data")
            else:
                fields["dispute_id"] = payment_id
        else:
            return []
        return payment_event(webhook, payment_id, kind, amount=total, currency=currency, **fields)


_TRANSACTION_KINDS = {
    "transaction.created": PaymentEventKind.PENDING,
    "transaction.ready": PaymentEventKind.PENDING,
    "transaction.billed": PaymentEventKind.PENDING,
    "transaction.paid": PaymentEventKind.SUCCEEDED,
    "transaction.completed": PaymentEventKind.SUCCEEDED,
    "transaction.payment_failed": PaymentEventKind.FAILED,
    "transaction.canceled": PaymentEventKind.CANCELED,
}
# A chargeback and its reversal are separate adjustments that only share the transaction, so
# the transaction id is the dispute id: the reversal then closes the dispute the chargeback opened.
_ADJUSTMENT_KINDS = {
    "refund": PaymentEventKind.REFUNDED,
    "chargeback": PaymentEventKind.DISPUTE_OPENED,
    "chargeback_reverse": PaymentEventKind.DISPUTE_WON,
}
