"""GoCardless: ``Webhook-Signature`` is the hex HMAC-SHA256 of the raw body.

One delivery carries several events (``{"events": [...], "meta": {...}}``); each becomes its own
event, stored as its canonical JSON and deduplicated on its ``id``. The signature covers the raw
body and is checked before the body is parsed. A bad signature gets 498 (Token Invalid), as
GoCardless asks. Events name the resource (``links.payment``, ``links.refund``) but carry no
amounts or currencies, so the ledger learns states, not sums, from them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import (
    HmacKeys,
    HmacProvider,
    any_signature_matches,
    dig,
    iso_timestamp,
    parse_json_object,
)

SIGNATURE_HEADER = "webhook-signature"
K = PaymentEventKind

# Compact and ASCII-only (ensure_ascii): the same event always stores as the same bytes, and a
# lone surrogate (which JSON can carry as an escape) stays an escape, so the bytes are always
# encodable. Built once: json.dumps with options builds a new encoder on every call.
_CANONICAL_JSON = json.JSONEncoder(separators=(",", ":"))

_PAYMENT_KINDS = {
    "payments.created": K.PENDING,
    "payments.customer_approval_granted": K.PENDING,
    "payments.submitted": K.PENDING,
    "payments.resubmission_requested": K.PENDING,
    "payments.confirmed": K.SUCCEEDED,
    "payments.paid_out": K.SUCCEEDED,
    "payments.failed": K.FAILED,
    "payments.customer_approval_denied": K.FAILED,
    "payments.cancelled": K.CANCELED,
    # A Direct Debit chargeback is opened by charged_back and closed either way later:
    # chargeback_cancelled (the payer's bank withdrew it, the merchant keeps the money) or
    # chargeback_settled (it was deducted from a payout). GoCardless has no chargeback id, so
    # the payment id is the dispute id and the closing event settles the one opened dispute.
    "payments.charged_back": K.DISPUTE_OPENED,
    "payments.chargeback_cancelled": K.DISPUTE_WON,
    "payments.chargeback_settled": K.DISPUTE_LOST,
}
_REFUND_TYPES = {"refunds.created", "refunds.paid", "refunds.refund_settled"}


def gocardless_signature(secret: str, body: bytes) -> str:
    return hmac.digest(secret.encode(), body, hashlib.sha256).hex()


def verify_gocardless_signature(body: bytes, header: str | None, keys: HmacKeys) -> None:
    """Raise VerificationError unless ``header`` is the body's signature under some key."""
    if not header:
        raise VerificationError("missing Webhook-Signature header")
    if not any_signature_matches(keys.hexdigests(body), [header]):
        raise VerificationError("no GoCardless signature matches")


def _missing(item: dict[str, Any], index: int) -> PayloadError:
    """The error for the first required field of an event that is not a non-empty string."""
    for key in ("id", "resource_type", "action"):
        value = item.get(key)
        if not isinstance(value, str) or not value:
            break
    return PayloadError(f"events[{index}].{key} is missing or not a string")


class GoCardlessProvider(HmacProvider):
    type_name = "gocardless"
    rejection_status: ClassVar[int] = 498
    sample_event_types = (
        "payments.confirmed",
        "payments.submitted",
        "payments.failed",
        "payments.cancelled",
        "payments.charged_back",
        "refunds.paid",
    )

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        body = request.body
        verify_gocardless_signature(body, request.headers.get(SIGNATURE_HEADER), self.keys)
        events = parse_json_object(body).get("events")
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
                    _CANONICAL_JSON.encode(item).encode(),
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
            if kind in (K.DISPUTE_OPENED, K.DISPUTE_WON, K.DISPUTE_LOST):
                fields["dispute_id"] = payment_id
        elif webhook.event_type in _REFUND_TYPES:
            kind = K.REFUNDED
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
        return [
            PaymentEvent.of(
                webhook,
                payment_id=payment_id,
                kind=kind,
                **fields,
            )
        ]

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        event_type = event_type or self.sample_event_types[0]
        now = int(self.clock())
        body = json.dumps(sample_body(event_type, now), separators=(",", ":")).encode()
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                SIGNATURE_HEADER: gocardless_signature(self.config.secrets[0], body),
            },
        )


def _rid(prefix: str) -> str:
    return prefix + _secrets.token_hex(6).upper()


def sample_body(event_type: str, now: int) -> dict[str, Any]:
    """A GoCardless webhook body shaped like the real thing: one event plus ``meta``."""
    resource_type, _, action = event_type.partition(".")
    if resource_type not in ("payments", "refunds") or not action:
        raise PayloadError(f"no GoCardless sample for event type {event_type!r}")
    payment = _rid("PM")
    links: dict[str, str] = {"payment": payment}
    if resource_type == "refunds":
        links["refund"] = _rid("RF")
    created = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    return {
        "events": [
            {
                "id": _rid("EV"),
                "created_at": created.replace("+00:00", "Z"),
                "resource_type": resource_type,
                "action": action,
                "links": links,
                "details": {
                    "origin": "gocardless",
                    "cause": f"{resource_type[:-1]}_{action}",
                    "description": f"Sample {resource_type[:-1]} {action} event.",
                },
                "metadata": {},
                "resource_metadata": {"order_dispatch_date": "2026-01-12"},
            }
        ],
        "meta": {"webhook_id": _rid("WB")},
    }
