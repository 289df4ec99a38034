"""Square: ``x-square-hmacsha256-signature``, base64 HMAC-SHA256 over notification URL + body.

The key is the subscription's signature key as UTF-8. The URL is the one registered with the
subscription (option ``notification_url``), not the URL this request arrived on: behind a proxy
or load balancer the two differ, and Square signed the registered one. The base64 text is
compared as received, as the official helper compares it (no lenient re-decoding), and, as it
does, an empty body is refused whatever the signature says.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import EventsApiOptions, dig, parse_json_object, require_str
from payhook.providers.events import EventFields, payment_event
from payhook.providers.hmac import HmacProvider, HmacScheme

SCHEME = HmacScheme(header="x-square-hmacsha256-signature", signed="{url}{body}", encoding="base64")


class SquareOptions(EventsApiOptions, frozen=True):
    #: The subscription's notification URL, exactly as registered: Square signs it.
    notification_url: Annotated[str, Meta(min_length=1)]


class SquareProvider(HmacProvider):
    Options = SquareOptions
    provider_type = "square"
    scheme = SCHEME
    event_fields = EventFields("event_id", time=("created_at",), time_format="iso_with_offset")
    sample_event_types = (
        "payment.updated",
        "payment.created",
        "refund.updated",
        "dispute.created",
        "dispute.state.updated",
    )

    def signed_url(self) -> str:
        url: str = self.config.options["notification_url"]  # SquareOptions checked it is text
        try:
            url.encode()
        except UnicodeEncodeError:
            raise ConfigError(f"providers.{self.name}.notification_url: not UTF-8 text") from None
        return url

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        if not request.body:  # the official helper refuses it, even when signed
            raise VerificationError("empty body")
        return super().verify(request)

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        event = parse_json_object(webhook.payload)
        obj = dig(event, "data", "object")
        if not isinstance(obj, dict):
            raise PayloadError("Square event has no data.object")
        mapped = _map(webhook.event_type, obj)
        if mapped is None:
            return []
        kind, payment_id, money, extra = mapped
        if not isinstance(payment_id, str) or not payment_id:
            raise PayloadError("Square object has no payment id")
        amount = money.get("amount") if isinstance(money, dict) else None
        currency = money.get("currency") if isinstance(money, dict) else None
        return payment_event(webhook, payment_id, kind, amount=amount, currency=currency, **extra)


_PAYMENT_STATUS = {
    "PENDING": PaymentEventKind.PENDING,
    "APPROVED": PaymentEventKind.AUTHORIZED,
    "COMPLETED": PaymentEventKind.SUCCEEDED,
    "FAILED": PaymentEventKind.FAILED,
    "CANCELED": PaymentEventKind.CANCELED,
}
# ACCEPTED: the seller accepted the dispute, so the money went to the cardholder.
_DISPUTE_OUTCOMES = {
    "WON": PaymentEventKind.DISPUTE_WON,
    "LOST": PaymentEventKind.DISPUTE_LOST,
    "ACCEPTED": PaymentEventKind.DISPUTE_LOST,
}

_Mapped = tuple[PaymentEventKind, object, object, dict[str, Any]]


def _map(event_type: str, obj: dict[str, Any]) -> _Mapped | None:
    if event_type in ("payment.created", "payment.updated"):
        payment = obj.get("payment")
        if not isinstance(payment, dict):
            raise PayloadError("Square payment event has no data.object.payment")
        kind = _PAYMENT_STATUS.get(str(payment.get("status")))
        # total_money includes the tip: it is what is captured and what refunds draw on.
        money = payment.get("total_money") or payment.get("amount_money")
        return (kind, payment.get("id"), money, {}) if kind else None
    if event_type in ("refund.created", "refund.updated"):
        refund = obj.get("refund")
        if not isinstance(refund, dict):
            raise PayloadError("Square refund event has no data.object.refund")
        if refund.get("status") != "COMPLETED":
            return None
        refund_id = require_str(refund, "id", "data.object.refund")
        extra = {"refund_id": refund_id}
        return (
            PaymentEventKind.REFUNDED,
            refund.get("payment_id"),
            refund.get("amount_money"),
            extra,
        )
    if event_type.startswith("dispute."):
        dispute = obj.get("dispute")
        if not isinstance(dispute, dict):
            raise PayloadError("Square dispute event has no data.object.dispute")
        if event_type == "dispute.created":
            kind = PaymentEventKind.DISPUTE_OPENED
        elif event_type in ("dispute.state.updated", "dispute.state.changed"):
            outcome = _DISPUTE_OUTCOMES.get(str(dispute.get("state")))
            if outcome is None:
                return None
            kind = outcome
        else:
            return None
        dispute_id = dispute.get("id") or dispute.get("dispute_id")
        if not isinstance(dispute_id, str) or not dispute_id:
            raise PayloadError("Square dispute has no id")
        payment_id = dig(dispute, "disputed_payment", "payment_id")
        return kind, payment_id, dispute.get("amount_money"), {"dispute_id": dispute_id}
    return None
