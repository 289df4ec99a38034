"""Square: ``x-square-hmacsha256-signature``, base64 HMAC-SHA256 over notification URL + body.

The key is the subscription's signature key as UTF-8. The URL is the one registered with the
subscription (option ``notification_url``), not the URL this request arrived on: behind a proxy
or load balancer the two differ, and Square signed the registered one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as _secrets
import uuid
from binascii import b2a_base64
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
    Provider,
    ProviderConfig,
    ProviderOptions,
    any_signature_matches,
    dig,
    iso_timestamp,
    parse_json_object,
    require_str,
)

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
K = PaymentEventKind


def square_signature(key: str, notification_url: str, body: bytes) -> str:
    mac = hmac.digest(key.encode(), notification_url.encode() + body, hashlib.sha256)
    return base64.b64encode(mac).decode()


def verify_square_signature(body: bytes, header: str | None, keys: HmacKeys) -> None:
    """Raise VerificationError unless one configured key signed URL + body.

    ``keys`` are the signature keys with the notification URL as their prefix
    (``HmacKeys.of_secrets(config, url.encode())``).
    """
    if not header:
        raise VerificationError("missing x-square-hmacsha256-signature header")
    if not body:
        # The official helper refuses an empty body whatever the signature says.
        raise VerificationError("empty body")
    if not header.isascii():
        raise VerificationError("x-square-hmacsha256-signature is not base64")
    expected = [b2a_base64(mac, newline=False) for mac in keys.digests(body)]
    # Base64 text is compared as received, as the SDK does: no lenient re-decoding.
    if not any_signature_matches(expected, [header.encode()]):
        raise VerificationError("no Square signature matches")


class SquareOptions(ProviderOptions, frozen=True):
    #: The subscription's notification URL, exactly as registered: Square signs it.
    notification_url: Annotated[str, Meta(min_length=1)]


class SquareProvider(Provider):
    Options = SquareOptions
    type_name = "square"
    sample_event_types = (
        "payment.updated",
        "payment.created",
        "refund.updated",
        "dispute.created",
        "dispute.state.updated",
    )

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        url = config.required_option("notification_url")
        if not isinstance(url, str):
            raise ConfigError(
                f"providers.{config.name}.notification_url: got {type(url).__name__},"
                " expected the subscription's URL as a string"
            )
        try:
            prefix = url.encode()
        except UnicodeEncodeError:
            raise ConfigError(f"providers.{config.name}.notification_url: not UTF-8 text") from None
        self.notification_url = url
        self.keys = HmacKeys.of_secrets(config, prefix)  # Square signs the URL, then the body

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        body = request.body
        verify_square_signature(body, request.headers.get(SIGNATURE_HEADER), self.keys)
        event = parse_json_object(body)
        return [
            VerifiedEvent(
                require_str(event, "event_id"),
                require_str(event, "type"),
                body,
                iso_timestamp(event.get("created_at"), naive_as_utc=False),
            )
        ]

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
        return [
            PaymentEvent.of(
                webhook,
                payment_id=payment_id,
                kind=kind,
                amount=minor_amount(amount) if amount is not None else None,
                currency=normalize_currency(currency) if currency else None,
                **extra,
            )
        ]

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        event_type = event_type or self.sample_event_types[0]
        body = json.dumps(sample_event(event_type, int(self.clock())), separators=(",", ":"))
        raw = body.encode()
        signature = square_signature(self.config.secrets[0], self.notification_url, raw)
        return WebhookRequest(
            body=raw,
            headers={"content-type": "application/json", SIGNATURE_HEADER: signature},
        )


_PAYMENT_STATUS = {
    "PENDING": K.PENDING,
    "APPROVED": K.AUTHORIZED,
    "COMPLETED": K.SUCCEEDED,
    "FAILED": K.FAILED,
    "CANCELED": K.CANCELED,
}
# ACCEPTED: the seller accepted the dispute, so the money went to the cardholder.
_DISPUTE_OUTCOMES = {"WON": K.DISPUTE_WON, "LOST": K.DISPUTE_LOST, "ACCEPTED": K.DISPUTE_LOST}

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
        return K.REFUNDED, refund.get("payment_id"), refund.get("amount_money"), extra
    if event_type.startswith("dispute."):
        dispute = obj.get("dispute")
        if not isinstance(dispute, dict):
            raise PayloadError("Square dispute event has no data.object.dispute")
        if event_type == "dispute.created":
            kind = K.DISPUTE_OPENED
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


def _sid(length: int = 22) -> str:
    return _secrets.token_urlsafe(length)[:length]


def sample_event(event_type: str, now: int, amount: int = 2000) -> dict[str, Any]:
    """A Square event shaped like the real thing (API version 2024-10-17)."""
    created = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    payment_id = _sid()
    money = {"amount": amount, "currency": "USD"}
    obj: dict[str, Any]
    if event_type.startswith("payment."):
        obj = {
            "payment": {
                "id": payment_id,
                "amount_money": money,
                "total_money": money,
                "approved_money": money,
                "status": "COMPLETED" if event_type == "payment.updated" else "APPROVED",
                "source_type": "CARD",
                "location_id": "L88917AVBK2S5",
                "order_id": _sid(),
                "created_at": created,
                "updated_at": created,
                "version": 1,
            }
        }
        data_type, data_id = "payment", payment_id
    elif event_type.startswith("refund."):
        refund_id = f"{payment_id}_{_sid(10)}"
        obj = {
            "refund": {
                "id": refund_id,
                "amount_money": money,
                "payment_id": payment_id,
                "status": "COMPLETED",
                "location_id": "L88917AVBK2S5",
                "created_at": created,
                "updated_at": created,
                "version": 2,
            }
        }
        data_type, data_id = "refund", refund_id
    elif event_type in ("dispute.created", "dispute.state.updated"):
        dispute_id = _sid()
        obj = {
            "dispute": {
                "id": dispute_id,
                "dispute_id": dispute_id,
                "amount_money": money,
                "reason": "NOT_AS_DESCRIBED",
                "state": "EVIDENCE_REQUIRED" if event_type == "dispute.created" else "WON",
                "disputed_payment": {"payment_id": payment_id},
                "card_brand": "VISA",
                "created_at": created,
                "updated_at": created,
                "version": 1,
            }
        }
        data_type, data_id = "dispute", dispute_id
    else:
        raise PayloadError(f"no Square sample for event type {event_type!r}")
    return {
        "merchant_id": "MLEFBHHSJGVHD",
        "type": event_type,
        "event_id": str(uuid.uuid4()),
        "created_at": created,
        "data": {"type": data_type, "id": data_id, "object": obj},
    }
