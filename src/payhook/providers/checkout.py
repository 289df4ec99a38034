"""Checkout.com: ``Cko-Signature``, hex HMAC-SHA256 of the raw body with the signature key.

A webhook can also be configured to send a fixed ``Authorization`` header value; when the
option ``authorization`` is set, that header must match it too (compared in constant time),
and it is checked with the signature, before the body is read: a wrong one is a verification
failure whatever the body. Checkout.com publishes no SDK helper for this; the scheme follows
its webhook documentation.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from msgspec import Meta

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import minor_amount
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import (
    ProviderConfig,
    ProviderOptions,
    dig,
    parse_json_object,
    require_str,
)
from payhook.providers.events import DISPUTE_KINDS, EventFields, payment_event
from payhook.providers.hmac import HmacProvider, HmacScheme

SCHEME = HmacScheme(header="Cko-Signature")


class CheckoutOptions(ProviderOptions, frozen=True):
    #: The static Authorization header value configured on the webhook, if any.
    authorization: Annotated[str, Meta(min_length=1)] | None = None


class CheckoutProvider(HmacProvider):
    Options = CheckoutOptions
    provider_type = "checkout"
    scheme = SCHEME
    # Classic events carry created_on; Flow-era events carry timestamp instead.
    event_fields = EventFields(time=("created_on", "timestamp"), time_format="iso_with_offset")
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
        super().__init__(config, clock)  # CheckoutOptions has checked the option's type
        self.authorization: str | None = config.option("authorization")

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        signed = self.engine.verify(request)
        if self.authorization is not None:
            received = request.headers.get("authorization")
            if not received:
                raise VerificationError("missing Authorization header", code="missing_signature")
            # surrogatepass: a stray surrogate must compare unequal, not raise.
            if not hmac.compare_digest(
                received.encode("utf-8", "surrogatepass"),
                self.authorization.encode("utf-8", "surrogatepass"),
            ):
                raise VerificationError("Authorization header does not match", code="mismatch")
        return self.events(request, signed)

    def sample_headers(self, event_type: str, body: bytes) -> dict[str, str]:
        return {} if self.authorization is None else {"authorization": self.authorization}

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        kind = _KINDS.get(webhook.event_type)
        if kind is None:
            return []
        event = parse_json_object(webhook.payload)
        data = event.get("data")
        if not isinstance(data, dict):
            raise PayloadError("Checkout.com event has no data object")
        fields: dict[str, Any] = {}
        if kind in DISPUTE_KINDS:
            payment_id = require_str(data, "payment_id", "data")
            fields["dispute_id"] = require_str(data, "id", "data")
        else:
            payment_id = require_str(data, "id", "data")
        if kind is PaymentEventKind.REFUNDED:
            # Each refund is its own action; the balances (newer events) give the totals.
            fields["refund_id"] = require_str(data, "action_id", "data")
            total_refunded = dig(data, "balances", "total_refunded")
            total_captured = dig(data, "balances", "total_captured")
            if total_refunded is not None:
                fields["refunded_total"] = minor_amount(total_refunded)
            if total_captured is not None:
                fields["captured_hint"] = minor_amount(total_captured)
        amount, currency = data.get("amount"), data.get("currency")
        return payment_event(webhook, payment_id, kind, amount=amount, currency=currency, **fields)


_KINDS = {
    "payment_pending": PaymentEventKind.PENDING,
    "payment_approved": PaymentEventKind.AUTHORIZED,
    "payment_captured": PaymentEventKind.SUCCEEDED,
    "payment_declined": PaymentEventKind.FAILED,
    "payment_refunded": PaymentEventKind.REFUNDED,
    "payment_voided": PaymentEventKind.CANCELED,
    "payment_canceled": PaymentEventKind.CANCELED,
    "dispute_received": PaymentEventKind.DISPUTE_OPENED,
    "dispute_evidence_required": PaymentEventKind.DISPUTE_OPENED,
    "dispute_won": PaymentEventKind.DISPUTE_WON,
    # The issuer withdrew the dispute: the merchant keeps the funds, as when it is won.
    "dispute_canceled": PaymentEventKind.DISPUTE_WON,
    "dispute_lost": PaymentEventKind.DISPUTE_LOST,
    # Accepted by the merchant, or not answered in time: the cardholder keeps the funds.
    "dispute_accepted": PaymentEventKind.DISPUTE_LOST,
    "dispute_expired": PaymentEventKind.DISPUTE_LOST,
}
