"""GoCardless: ``Webhook-Signature`` is the hex HMAC-SHA256 of the raw body.

One delivery carries several events (``{"events": [...], "meta": {...}}``); each becomes its own
event, stored as its canonical JSON and deduplicated on its ``id``. The signature covers the raw
body and is checked before the body is parsed. A bad signature gets 498 (Token Invalid), as
GoCardless asks. Events name the resource (``links.payment``, ``links.refund``) but carry no
amounts or currencies, so the ledger learns states, not sums, from them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError
from payhook.providers.base import (
    EventsApiOptions,
    canonical_json,
    dig,
    iso_timestamp,
    parse_json_object,
)
from payhook.providers.events import DISPUTE_KINDS
from payhook.providers.hmac import HmacProvider, HmacScheme, Signed

SCHEME = HmacScheme(header="Webhook-Signature")

_PAYMENT_KINDS = {
    "payments.created": PaymentEventKind.PENDING,
    "payments.customer_approval_granted": PaymentEventKind.PENDING,
    "payments.submitted": PaymentEventKind.PENDING,
    "payments.resubmission_requested": PaymentEventKind.PENDING,
    "payments.confirmed": PaymentEventKind.SUCCEEDED,
    "payments.paid_out": PaymentEventKind.SUCCEEDED,
    "payments.failed": PaymentEventKind.FAILED,
    "payments.customer_approval_denied": PaymentEventKind.FAILED,
    "payments.cancelled": PaymentEventKind.CANCELED,
    # A Direct Debit chargeback is opened by charged_back and closed either way later:
    # chargeback_cancelled (the payer's bank withdrew it, the merchant keeps the money) or
    # chargeback_settled (it was deducted from a payout). GoCardless has no chargeback id, so
    # the payment id is the dispute id and the closing event settles the one opened dispute.
    "payments.charged_back": PaymentEventKind.DISPUTE_OPENED,
    "payments.chargeback_cancelled": PaymentEventKind.DISPUTE_WON,
    "payments.chargeback_settled": PaymentEventKind.DISPUTE_LOST,
}
_REFUND_TYPES = {"refunds.created", "refunds.paid", "refunds.refund_settled"}


class GoCardlessProvider(HmacProvider):
    Options = EventsApiOptions
    provider_type = "gocardless"
    scheme = SCHEME
    rejection_status: ClassVar[int] = 498
    sample_event_types = (
        "payments.confirmed",
        "payments.submitted",
        "payments.failed",
        "payments.cancelled",
        "payments.charged_back",
        "payments.chargeback_cancelled",
        "refunds.created",
        "refunds.paid",
        "refunds.failed",
        "mandates.active",
    )

    def events(self, request: WebhookRequest, signed: Signed) -> list[VerifiedEvent]:
        events = parse_json_object(request.body).get("events")
        if not isinstance(events, list):
            raise PayloadError("body.events is missing or not a list")
        verified = []
        for index, item in enumerate(events):
            if not isinstance(item, dict):
                raise PayloadError(f"events[{index}] is not an object")
            event_id, resource, action = (
                item.get("id"),
                item.get("resource_type"),
                item.get("action"),
            )
            # type(...) is str: what json.loads gives; one test each, the message only on failure
            if not (
                type(event_id) is str
                and type(resource) is str
                and type(action) is str
                and event_id
                and resource
                and action
            ):
                raise _missing(item, index)
            verified.append(
                VerifiedEvent(
                    event_id,
                    f"{resource}.{action}",
                    canonical_json(item),
                    iso_timestamp(item.get("created_at")),
                )
            )
        return verified

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        event = parse_json_object(webhook.payload)
        fields: dict[str, Any] = {}
        if webhook.event_type in _PAYMENT_KINDS:
            kind = _PAYMENT_KINDS[webhook.event_type]
            payment_id = dig(event, "links", "payment")
            if not isinstance(payment_id, str) or not payment_id:
                raise PayloadError("GoCardless payment event has no links.payment")
            if kind in DISPUTE_KINDS:
                fields["dispute_id"] = payment_id
        elif webhook.event_type in _REFUND_TYPES:
            kind = PaymentEventKind.REFUNDED
            payment_id = dig(event, "links", "payment")
            refund_id = dig(event, "links", "refund")
            # A refund event that names no payment cannot be attributed to a ledger row.
            if not isinstance(payment_id, str) or not payment_id:
                return []
            if not isinstance(refund_id, str) or not refund_id:
                raise PayloadError("GoCardless refund event has no links.refund")
            fields["refund_id"] = refund_id
        else:
            return []
        return [PaymentEvent.of(webhook, payment_id=payment_id, kind=kind, **fields)]


def _missing(item: dict[str, Any], index: int) -> PayloadError:
    """The error for the first required field of an event that is not a non-empty string."""
    for key in ("id", "resource_type", "action"):
        value = item.get(key)
        if not isinstance(value, str) or not value:
            break
    return PayloadError(f"events[{index}].{key} is missing or not a string")
