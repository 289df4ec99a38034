"""Checkout.com: ``Cko-Signature``, hex HMAC-SHA256 of the raw body with the signature key.

A webhook can also be configured to send a fixed ``Authorization`` header value; when the
option ``authorization`` is set, that header must match it too (compared in constant time).
Checkout.com publishes no SDK helper for this; the scheme follows its webhook documentation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from msgspec import Meta

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import (
    HmacKeys,
    HmacProvider,
    ProviderConfig,
    ProviderOptions,
    any_signature_matches,
    dig,
    iso_timestamp,
    parse_json_object,
    require_str,
)

SIGNATURE_HEADER = "cko-signature"
AUTHORIZATION_HEADER = "authorization"
K = PaymentEventKind


def checkout_signature(key: str, body: bytes) -> str:
    return hmac.digest(key.encode(), body, hashlib.sha256).hex()


def verify_checkout_signature(
    body: bytes,
    signature: str | None,
    authorization: str | None,
    keys: HmacKeys,
    expected_authorization: str | None,
) -> None:
    """Raise VerificationError unless the body is signed by a configured key (and, when one is
    configured, the Authorization header carries the expected value)."""
    if not signature:
        raise VerificationError("missing Cko-Signature header")
    if not signature.isascii():
        raise VerificationError("Cko-Signature is not hex")
    if not any_signature_matches(keys.hexdigests(body), [signature]):
        raise VerificationError("no Checkout.com signature matches")
    if expected_authorization is not None:
        if not authorization:
            raise VerificationError("missing Authorization header")
        # surrogatepass: a stray surrogate must compare unequal, not raise.
        received = authorization.encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(received, expected_authorization.encode()):
            raise VerificationError("Authorization header does not match")


class CheckoutOptions(ProviderOptions, frozen=True):
    #: The static Authorization header value configured on the webhook, if any.
    authorization: Annotated[str, Meta(min_length=1)] | None = None


class CheckoutProvider(HmacProvider):
    Options = CheckoutOptions
    type_name = "checkout"
    sample_event_types = (
        "payment_captured",
        "payment_approved",
        "payment_declined",
        "payment_refunded",
        "payment_voided",
        "dispute_received",
        "dispute_won",
        "dispute_lost",
    )

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        authorization = config.option("authorization")
        if authorization is not None and (not isinstance(authorization, str) or not authorization):
            raise ConfigError(
                f"providers.{config.name}.authorization: got {type(authorization).__name__},"
                " expected the Authorization header value as a non-empty string"
            )
        self.authorization: str | None = authorization

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        verify_checkout_signature(
            request.body,
            request.headers.get(SIGNATURE_HEADER),
            request.headers.get(AUTHORIZATION_HEADER),
            self.keys,
            self.authorization,
        )
        event = parse_json_object(request.body)
        # Classic events carry created_on; Flow-era events carry timestamp instead.
        occurred = event.get("created_on", event.get("timestamp"))
        return [
            VerifiedEvent(
                event_id=require_str(event, "id"),
                event_type=require_str(event, "type"),
                payload=request.body,
                occurred_at=iso_timestamp(occurred, naive_as_utc=False),
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        kind = _KINDS.get(webhook.event_type)
        if kind is None:
            return []
        event = parse_json_object(webhook.payload)
        data = event.get("data")
        if not isinstance(data, dict):
            raise PayloadError("Checkout.com event has no data object")
        fields: dict[str, Any] = {}
        if kind in _DISPUTE_KINDS:
            payment_id = require_str(data, "payment_id", "data")
            fields["dispute_id"] = require_str(data, "id", "data")
        else:
            payment_id = require_str(data, "id", "data")
        if kind is K.REFUNDED:
            # Each refund is its own action; the balances (newer events) give the totals.
            fields["refund_id"] = require_str(data, "action_id", "data")
            total_refunded = dig(data, "balances", "total_refunded")
            total_captured = dig(data, "balances", "total_captured")
            if total_refunded is not None:
                fields["refunded_total"] = minor_amount(total_refunded)
            if total_captured is not None:
                fields["captured_hint"] = minor_amount(total_captured)
        amount, currency = data.get("amount"), data.get("currency")
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
        body = json.dumps(sample_event(event_type, int(self.clock())), separators=(",", ":"))
        raw = body.encode()
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: checkout_signature(self.config.secrets[0], raw),
        }
        if self.authorization is not None:
            headers[AUTHORIZATION_HEADER] = self.authorization
        return WebhookRequest(body=raw, headers=headers)


_KINDS = {
    "payment_pending": K.PENDING,
    "payment_approved": K.AUTHORIZED,
    "payment_captured": K.SUCCEEDED,
    "payment_declined": K.FAILED,
    "payment_refunded": K.REFUNDED,
    "payment_voided": K.CANCELED,
    "payment_canceled": K.CANCELED,
    "dispute_received": K.DISPUTE_OPENED,
    "dispute_evidence_required": K.DISPUTE_OPENED,
    "dispute_won": K.DISPUTE_WON,
    # The issuer withdrew the dispute: the merchant keeps the funds, as when it is won.
    "dispute_canceled": K.DISPUTE_WON,
    "dispute_lost": K.DISPUTE_LOST,
    # Accepted by the merchant, or not answered in time: the cardholder keeps the funds.
    "dispute_accepted": K.DISPUTE_LOST,
    "dispute_expired": K.DISPUTE_LOST,
}
_DISPUTE_KINDS = {K.DISPUTE_OPENED, K.DISPUTE_WON, K.DISPUTE_LOST}


def _cko_id(prefix: str) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return prefix + "_" + "".join(_secrets.choice(alphabet) for _ in range(26))


def sample_event(event_type: str, now: int, amount: int = 10000) -> dict[str, Any]:
    """A Checkout.com event shaped like the documented examples."""
    created = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    payment_id = _cko_id("pay")
    data: dict[str, Any]
    if event_type.startswith("payment_"):
        data = {
            "id": payment_id,
            "action_id": _cko_id("act"),
            "amount": amount,
            "currency": "EUR",
            "reference": "ORD-5023-4E89",
            "processed_on": created,
            "response_code": "20005" if event_type == "payment_declined" else "10000",
            "response_summary": "Declined" if event_type == "payment_declined" else "Approved",
        }
    elif event_type.startswith("dispute_"):
        data = {
            "id": _cko_id("dsp"),
            "payment_id": payment_id,
            "amount": amount,
            "currency": "EUR",
            "category": "fraudulent",
            "reference": "ORD-5023-4E89",
            "date": created,
        }
    else:
        raise PayloadError(f"no Checkout.com sample for event type {event_type!r}")
    event_id = _cko_id("evt")
    return {
        "id": event_id,
        "type": event_type,
        "created_on": created,
        "data": data,
        "_links": {"self": {"href": f"https://api.sandbox.checkout.com/events/{event_id}"}},
    }
