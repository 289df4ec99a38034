"""Standard Webhooks (and Svix, which sends the same under ``svix-*`` header names).

``webhook-signature`` holds space-separated ``v1,<base64>`` entries: HMAC-SHA256 over
``"{id}.{timestamp}.{body}"`` keyed with the base64-decoded secret (after ``whsec_``).
Entries of other versions (``v1a`` is ed25519) are ignored; a malformed entry is a
verification failure, never a ValueError (the reference library lets one escape). Received
signatures are decoded leniently, as the reference library decodes them: the MAC must still
match. The timestamp is checked before the MAC, as the library checks it.

A delivery carries ``webhook-*`` or ``svix-*`` headers: the first complete set (id, timestamp
and signature all present), ``webhook-*`` first, is the one verified. The event id is the
signed ``webhook-id``; the event time is the signed timestamp.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent
from payhook.errors import VerificationError
from payhook.providers.base import parse_json_object
from payhook.providers.hmac import (
    HmacProvider,
    HmacScheme,
    Signed,
    Versioned,
    whsec_key,
)

SCHEME = HmacScheme(
    header="webhook-signature",
    signed="{id}.{timestamp}.{body}",
    encoding="base64",
    listing=Versioned("v1"),
    compare="lenient",
    timestamp_header="webhook-timestamp",
    id_header="webhook-id",
    key=whsec_key,
    timestamp_first=True,
)


class StandardWebhooksProvider(HmacProvider):
    provider_type = "standard"
    scheme = SCHEME
    sample_event_types: ClassVar[tuple[str, ...]] = ("payment.succeeded", "invoice.paid")

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        return self.events(request, self.engine.verify(_first_complete_set(request)))

    def events(self, request: WebhookRequest, signed: Signed) -> list[VerifiedEvent]:
        msg_id, timestamp = signed_message(signed)
        event_type = parse_json_object(request.body).get("type")
        return [
            VerifiedEvent(
                event_id=msg_id,
                event_type=event_type if isinstance(event_type, str) and event_type else "unknown",
                payload=request.body,
                occurred_at=float(timestamp),
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        # A generic Standard Webhooks sender has no common payment schema: the event is stored,
        # audited and published, but it feeds no ledger row.
        return []


def _first_complete_set(request: WebhookRequest) -> WebhookRequest:
    """The delivery with its ``svix-*`` set under ``webhook-*`` names when only that set is
    complete; otherwise as sent (the engine then names what is missing)."""
    get = request.headers.get
    if get("webhook-id") and get("webhook-timestamp") and get("webhook-signature"):
        return request  # spelled out, not looped: this runs on every delivery
    svix = {f"webhook-{name}": get(f"svix-{name}") for name in ("id", "timestamp", "signature")}
    if not all(svix.values()):
        return request
    return dataclasses.replace(request, headers={**request.headers, **svix})  # type: ignore[dict-item]


def signed_message(signed: Signed) -> tuple[str, int]:
    """The signed message id and timestamp of a verified delivery."""
    if signed.message_id is None or signed.timestamp is None:  # the scheme signs both
        raise VerificationError("webhook-id or webhook-timestamp is not signed")
    return signed.message_id, signed.timestamp
