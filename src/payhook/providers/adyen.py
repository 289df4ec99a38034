"""Adyen standard notifications: an HMAC signature inside every notification item.

Each ``NotificationRequestItem`` carries ``additionalData.hmacSignature``: base64 HMAC-SHA256,
keyed with the hex-decoded HMAC key, over ``pspReference:originalReference:merchantAccountCode:
merchantReference:value:currency:eventCode:success``. Every item of a request must verify, or
the whole request is rejected. Adyen gives no event id: one is derived from the fields that
identify a notification. The classic integration expects the response body ``[accepted]``.

The signatures are inside the body, so the body is parsed before anything is verified: at
most ``MAX_BODY_BYTES`` of it, with ``json.loads``, then at most ``MAX_NOTIFICATION_ITEMS``
items, verified in order until the first failure. Each item is stored as its canonical JSON.

Samples (``payhook send``) are data: ``payhook/samples/adyen/<eventCode>.json``, one
notification each, signed item by item when sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from binascii import b2a_base64
from collections.abc import Sequence
from typing import Any

from payhook.core.clock import Clock, system_clock
from payhook.core.model import IngestOutcome, StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import (
    Provider,
    ProviderConfig,
    ProviderResponse,
    canonical_json,
    iso_timestamp,
    parse_json_object,
    require_str,
)
from payhook.providers.events import DISPUTE_KINDS, payment_event
from payhook.providers.samples import sample

_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")

#: Adyen's documentation ("Understand notifications", notification structure): JSON and HTTP
#: POST notifications always contain a single NotificationRequestItem; SOAP notifications may
#: contain up to six. A request with more is refused before any item is verified: one
#: authentic item repeated would otherwise pass every check, as many times as the body holds.
MAX_NOTIFICATION_ITEMS = 6
#: The body is parsed before any signature can be checked, and json.loads costs up to ~0.1 us
#: per byte (a list object for every two bytes of ``[[],[],...]``): ~90 ms for a forged 1 MiB
#: body. A notification item is flat text fields: one signed by Adyen's test platform, with 20
#: additionalData fields (the Python SDK's test mocks), is 1.2 KiB, six of them ~8 KiB. A body
#: over 64 KiB is answered 413 unread (``Provider.max_body_bytes``), which caps what a forged
#: one costs at a few ms.
MAX_BODY_BYTES = 64 * 1024

# json.dumps's defaults, so ids stay as derived so far; called directly (a fifth cheaper).
_IDENTITY_JSON = json.JSONEncoder(check_circular=False)


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


def verify_notification_item(item: object, keys: Sequence[hmac.HMAC]) -> dict[str, Any]:
    """Verify one NotificationRequestItem against HMAC-SHA256 keys prepared once
    (``hmac.new(key, digestmod=hashlib.sha256)``); returns it or raises VerificationError."""
    if not isinstance(item, dict):
        raise VerificationError("notification item is not an object")
    additional = item.get("additionalData")
    signature = additional.get("hmacSignature") if isinstance(additional, dict) else None
    if not isinstance(signature, str) or not signature:
        raise VerificationError(
            "notification item has no additionalData.hmacSignature", code="missing_signature"
        )
    if not signature.isascii():
        raise VerificationError("hmacSignature is not base64")
    message, received = signing_string(item), signature.encode()
    matched = False
    for key in keys:
        mac = key.copy()
        mac.update(message)
        # No early exit: every key is tried, so timing says nothing about which one matched.
        matched |= hmac.compare_digest(b2a_base64(mac.digest(), newline=False), received)
    if not matched:
        raise VerificationError("no Adyen hmacSignature matches", code="mismatch")
    return item


def notification_items(body: bytes) -> list[object]:
    """The NotificationRequestItems of a notification body (None where a wrapper holds none).

    The signatures are inside, so a bad shape is a verification failure rather than a payload
    error; so is a body with more than MAX_NOTIFICATION_ITEMS items.
    """
    try:
        data = parse_json_object(body)
    except PayloadError as exc:  # not JSON, not UTF-8, too deep, not an object
        raise VerificationError(str(exc)) from exc
    items = data.get("notificationItems")
    if not isinstance(items, list) or not items:
        raise VerificationError("body has no notificationItems")
    if len(items) > MAX_NOTIFICATION_ITEMS:
        raise VerificationError(
            f"body has {len(items)} notificationItems, more than the {MAX_NOTIFICATION_ITEMS}"
            " Adyen sends in one request"
        )
    return [w.get("NotificationRequestItem") if isinstance(w, dict) else None for w in items]


def notification_event_id(item: dict[str, Any]) -> str:
    """Deterministic id from (pspReference, eventCode, success, originalReference)."""
    psp = require_str(item, "pspReference", "NotificationRequestItem")
    identity = [psp, item.get("eventCode"), item.get("success"), item.get("originalReference")]
    digest = hashlib.sha256(_IDENTITY_JSON.encode(identity).encode()).hexdigest()[:20]
    return f"{psp}:{digest}"


class AdyenProvider(Provider):
    provider_type = "adyen"
    max_body_bytes = MAX_BODY_BYTES
    sample_event_types = (
        "AUTHORISATION",
        "CAPTURE",
        "CAPTURE_FAILED",
        "REFUND",
        "REFUND_FAILED",
        "CANCELLATION",
        "CHARGEBACK",
        "CHARGEBACK_REVERSED",
    )

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        self.keys = [decode_hmac_key(s) for s in config.secrets]
        self.prepared = [hmac.new(key, digestmod=hashlib.sha256) for key in self.keys]

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        # Items are verified in order, and the first bad one rejects the request before any
        # item becomes an event.
        verified = [
            verify_notification_item(item, self.prepared)
            for item in notification_items(request.body)
        ]
        return [
            VerifiedEvent(
                notification_event_id(item),
                require_str(item, "eventCode", "NotificationRequestItem"),
                canonical_json(item),
                iso_timestamp(item.get("eventDate"), naive_as_utc=False),
            )
            for item in verified
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
        return payment_event(
            webhook,
            payment_id,
            kind,
            amount=value,
            currency=currency,
            refund_id=psp if kind is PaymentEventKind.REFUNDED else None,
            # All events of one dispute share its pspReference; the payment's is original.
            dispute_id=psp if kind in DISPUTE_KINDS else None,
        )

    def sample_request(self, event_type: str | None = None, **values: Any) -> WebhookRequest:
        """The sample of ``event_type`` (an eventCode) with fresh references, each item signed
        with the first key."""
        body = sample("adyen", event_type or self.sample_event_types[0], self.clock(), **values)
        for wrapper in body["notificationItems"]:
            item = wrapper["NotificationRequestItem"]
            signature = adyen_signature(self.keys[0], item)
            item.setdefault("additionalData", {})["hmacSignature"] = signature
        return WebhookRequest(
            body=canonical_json(body),
            headers={"content-type": "application/json"},
        )


# eventCode -> (kind, whether the payment is originalReference rather than pspReference).
_MODIFICATIONS: dict[str, tuple[PaymentEventKind, bool]] = {
    "CAPTURE": (PaymentEventKind.SUCCEEDED, True),
    "CAPTURE_FAILED": (PaymentEventKind.FAILED, True),
    "REFUND": (PaymentEventKind.REFUNDED, True),
    "CANCELLATION": (PaymentEventKind.CANCELED, True),
    "NOTIFICATION_OF_CHARGEBACK": (PaymentEventKind.DISPUTE_OPENED, True),
    "CHARGEBACK": (PaymentEventKind.DISPUTE_OPENED, True),
    "CHARGEBACK_REVERSED": (PaymentEventKind.DISPUTE_WON, True),
    "PREARBITRATION_WON": (PaymentEventKind.DISPUTE_WON, True),
    "SECOND_CHARGEBACK": (PaymentEventKind.DISPUTE_LOST, True),
    "PREARBITRATION_LOST": (PaymentEventKind.DISPUTE_LOST, True),
}


def _kind(event_code: str, success: bool) -> tuple[PaymentEventKind, bool] | None:
    if event_code == "AUTHORISATION":
        return (PaymentEventKind.AUTHORIZED if success else PaymentEventKind.FAILED), False
    # A modification with success=false was not carried out: nothing changed on the payment.
    # REFUND_FAILED and unknown codes are not mapped either.
    return _MODIFICATIONS.get(event_code) if success else None
