"""Adyen standard notifications: an HMAC signature inside every notification item.

Each ``NotificationRequestItem`` carries ``additionalData.hmacSignature``: base64 HMAC-SHA256,
keyed with the hex-decoded HMAC key, over ``pspReference:originalReference:merchantAccountCode:
merchantReference:value:currency:eventCode:success``. Every item of a request must verify, or
the whole request is rejected. Adyen gives no event id: one is derived from the fields that
identify a notification. The classic integration expects the response body ``[accepted]``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets as _secrets
import string
from binascii import b2a_base64
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from payhook.core.clock import Clock, system_clock
from payhook.core.model import IngestOutcome, StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import ConfigError, VerificationError
from payhook.providers.base import (
    HmacKeys,
    Provider,
    ProviderConfig,
    ProviderResponse,
    any_signature_matches,
    iso_timestamp,
    parse_json_object,
    require_str,
)
from payhook.providers.json_batch import body_text, event_bytes, split_wrapped_batch

_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
K = PaymentEventKind


def decode_hmac_key(secret: str) -> bytes:
    """The HMAC key as shown in the Customer Area (hex) to key bytes."""
    if not _HEX.match(secret):
        raise ConfigError("an Adyen HMAC key must be an even number of hex digits")
    return bytes.fromhex(secret)


def _signed_field(value: object) -> str:
    # Adyen's documented rule: an absent (or null) field signs as "". The Python SDK signs
    # str(value), so null would become "None" there; any type Adyen never sends is refused.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise VerificationError("notification item has a signed field of an unexpected type")


def signing_string(item: dict[str, Any]) -> bytes:
    amount = item.get("amount")
    if amount is None:
        amount = {}
    if not isinstance(amount, dict):
        raise VerificationError("notification item amount is not an object")
    fields = (
        item.get("pspReference"),
        item.get("originalReference"),
        item.get("merchantAccountCode"),
        item.get("merchantReference"),
        amount.get("value"),
        amount.get("currency"),
        item.get("eventCode"),
        item.get("success"),
    )
    try:
        return ":".join([v if type(v) is str else _signed_field(v) for v in fields]).encode()
    except UnicodeEncodeError as exc:  # a lone surrogate escaped in the JSON
        raise VerificationError("notification item has a field that is not valid text") from exc


def adyen_signature(key: bytes, item: dict[str, Any]) -> str:
    """Base64 HMAC-SHA256 of one notification item (``additionalData`` is not signed)."""
    return base64.b64encode(hmac.digest(key, signing_string(item), hashlib.sha256)).decode()


def verify_notification_item(item: object, keys: HmacKeys) -> dict[str, Any]:
    """Verify one NotificationRequestItem; returns it or raises VerificationError."""
    if not isinstance(item, dict):
        raise VerificationError("notification item is not an object")
    additional = item.get("additionalData")
    signature = additional.get("hmacSignature") if isinstance(additional, dict) else None
    if not isinstance(signature, str) or not signature:
        raise VerificationError("notification item has no additionalData.hmacSignature")
    if not signature.isascii():
        raise VerificationError("hmacSignature is not base64")
    message = signing_string(item)
    expected = [b2a_base64(mac, newline=False) for mac in keys.digests(message)]
    if not any_signature_matches(expected, [signature.encode()]):
        raise VerificationError("no Adyen hmacSignature matches")
    return item


def notification_items(body: bytes) -> tuple[list[object], list[str]]:
    """The items of a notification body, and each one's own JSON text.

    The signatures are inside, so a bad shape is a verification failure rather than a payload
    error. The body is read as json.loads reads it (so also UTF-16/32, and UTF-8 that encodes
    a lone surrogate): what is accepted is what was accepted when it was json.loads.
    """
    try:
        text = body_text(body, strict_utf8=False)
        data, texts = split_wrapped_batch(text, "notificationItems", "NotificationRequestItem")
    except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError, int-digit limits
        raise VerificationError("body is not a JSON notification") from exc
    items = data.get("notificationItems") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise VerificationError("body has no notificationItems")
    wrapped = [w.get("NotificationRequestItem") if isinstance(w, dict) else None for w in items]
    return wrapped, texts


# Built once: json.dumps with options builds a new encoder on every call.
_ID_ENCODER = json.JSONEncoder()


def _identity_json(values: list[object]) -> str:
    """Exactly ``json.dumps(values)``, which defined the ids; built by hand when every value is
    a str or None (as Adyen sends them), since setting the encoder up costs more than the
    encoding."""
    parts = []
    for value in values:
        if type(value) is str:
            parts.append(encode_basestring_ascii(value))
        elif value is None:
            parts.append("null")
        else:
            return _ID_ENCODER.encode(values)
    return f"[{', '.join(parts)}]"


def notification_event_id(item: dict[str, Any]) -> str:
    """Deterministic id from (pspReference, eventCode, success, originalReference)."""
    psp = require_str(item, "pspReference", "NotificationRequestItem")
    identity = [psp, item.get("eventCode"), item.get("success"), item.get("originalReference")]
    digest = hashlib.sha256(_identity_json(identity).encode()).hexdigest()[:20]
    return f"{psp}:{digest}"


class AdyenProvider(Provider):
    type_name = "adyen"
    sample_event_types = (
        "AUTHORISATION",
        "CAPTURE",
        "REFUND",
        "CANCELLATION",
        "CHARGEBACK",
        "CHARGEBACK_REVERSED",
    )

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        self.keys = [decode_hmac_key(s) for s in config.secrets]
        self.hmac_keys = HmacKeys(self.keys)

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        items, texts = notification_items(request.body)
        # Every item is verified before any becomes an event: one bad item rejects them all.
        verified = [verify_notification_item(item, self.hmac_keys) for item in items]
        return [
            VerifiedEvent(
                notification_event_id(item),
                require_str(item, "eventCode", "NotificationRequestItem"),
                event_bytes(text, item),  # the item's own text, as Adyen sent it
                iso_timestamp(item.get("eventDate"), naive_as_utc=False),
            )
            for item, text in zip(verified, texts, strict=True)
        ]

    def acknowledge(self, outcomes: list[IngestOutcome]) -> ProviderResponse:
        return ProviderResponse(200, b"[accepted]", "text/plain")

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        item = parse_json_object(webhook.payload)
        mapped = _kind(webhook.event_type, item.get("success") == "true")
        if mapped is None:
            return []
        kind, on_original = mapped
        psp = require_str(item, "pspReference", "NotificationRequestItem")
        payment_id = (
            require_str(item, "originalReference", "NotificationRequestItem")
            if on_original
            else psp
        )
        amount = item.get("amount")
        value = amount.get("value") if isinstance(amount, dict) else None
        currency = amount.get("currency") if isinstance(amount, dict) else None
        return [
            PaymentEvent.of(
                webhook,
                payment_id=payment_id,
                kind=kind,
                amount=minor_amount(value) if value is not None else None,
                currency=normalize_currency(currency) if currency else None,
                refund_id=psp if kind is K.REFUNDED else None,
                # All events of one dispute share its pspReference; the payment's is original.
                dispute_id=psp if kind in _DISPUTE_KINDS else None,
            )
        ]

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        code = event_type or self.sample_event_types[0]
        item = sample_item(code, int(self.clock()))
        item["additionalData"]["hmacSignature"] = adyen_signature(self.keys[0], item)
        body = {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
        return WebhookRequest(
            body=json.dumps(body, separators=(",", ":")).encode(),
            headers={"content-type": "application/json"},
        )


_DISPUTE_KINDS = {K.DISPUTE_OPENED, K.DISPUTE_WON, K.DISPUTE_LOST}
# eventCode -> (kind, whether the payment is originalReference rather than pspReference).
_MODIFICATIONS: dict[str, tuple[PaymentEventKind, bool]] = {
    "CAPTURE": (K.SUCCEEDED, True),
    "CAPTURE_FAILED": (K.FAILED, True),
    "REFUND": (K.REFUNDED, True),
    "CANCELLATION": (K.CANCELED, True),
    "NOTIFICATION_OF_CHARGEBACK": (K.DISPUTE_OPENED, True),
    "CHARGEBACK": (K.DISPUTE_OPENED, True),
    "CHARGEBACK_REVERSED": (K.DISPUTE_WON, True),
    "PREARBITRATION_WON": (K.DISPUTE_WON, True),
    "SECOND_CHARGEBACK": (K.DISPUTE_LOST, True),
    "PREARBITRATION_LOST": (K.DISPUTE_LOST, True),
}


def _kind(event_code: str, success: bool) -> tuple[PaymentEventKind, bool] | None:
    if event_code == "AUTHORISATION":
        return (K.AUTHORIZED if success else K.FAILED), False
    # A modification with success=false was not carried out: nothing changed on the payment.
    # REFUND_FAILED and unknown codes are not mapped either.
    return _MODIFICATIONS.get(event_code) if success else None


def _psp_reference() -> str:
    return "".join(_secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def sample_item(event_code: str, now: int, amount: int = 1130) -> dict[str, Any]:
    """An unsigned NotificationRequestItem shaped like Adyen's (JSON, webhooks v1)."""
    item: dict[str, Any] = {
        "additionalData": {"authCode": "076181", "cardSummary": "1111", "expiryDate": "03/2030"},
        "amount": {"currency": "EUR", "value": amount},
        "eventCode": event_code,
        "eventDate": datetime.fromtimestamp(now, UTC).isoformat(),
        "merchantAccountCode": "PayhookTest",
        "merchantReference": "order-6735",
        "paymentMethod": "visa",
        "pspReference": _psp_reference(),
        "reason": "",
        "success": "true",
    }
    if event_code == "AUTHORISATION":
        item["operations"] = ["CANCEL", "CAPTURE", "REFUND"]
        item["reason"] = "076181:1111:03/2030"
    else:
        item["originalReference"] = _psp_reference()
    return item
