"""Mollie: next-gen webhooks signed with ``X-Mollie-Signature: sha256=<hex>``, classic unsigned.

Next-gen: hex HMAC-SHA256 of the raw body, compared as sent (lower-case hex); the ``sha256=``
prefix is optional, as in the official SDK. The event is ``{id, type, entityId, createdAt,
_embedded.entity}`` (a "simple" payload leaves the entity out); amounts are ``{"value":
"10.00", "currency": "EUR"}`` in major units.

Classic webhooks (``id=tr_...`` form posts, no signature) are accepted only when the section sets
``allow_classic = true``. They are stored as unverified and feed no ledger row: the body holds
no state, only the id of a resource whose status must be fetched from Mollie's API. Mollie posts
the same id for every status change, so an id alone cannot be the event id (a later change would
look like a duplicate and be dropped). The event id is the resource id plus the start of a short
window of receive time (``classic_dedup_seconds``, default 5): a burst of identical posts is
stored once, and a later post, which may report a new status, is stored again. A retry of an
already-stored post (Mollie waits a minute or more) is stored twice, the safe direction.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import parse_qs

from msgspec import Meta

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import major_to_minor, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import VerificationError
from payhook.options import convert
from payhook.providers.base import (
    ProviderConfig,
    ProviderOptions,
    dig,
    parse_json_object,
    require_str,
)
from payhook.providers.events import EventFields
from payhook.providers.hmac import HmacProvider, HmacScheme, OptionalPrefix

SCHEME = HmacScheme(header="X-Mollie-Signature", listing=OptionalPrefix("sha256="))
CLASSIC_DEDUP_SECONDS = 5
_CLASSIC_ID = re.compile(r"([a-z]{2,5})_[A-Za-z0-9]{1,64}")
#: The longest body a classic webhook can be: ``id=`` and an id of at most 70 characters,
#: every character of the name and the id percent-encoded (3 bytes each). Longer unsigned
#: bodies are refused before parse_qs, which costs a Python step per field.
_CLASSIC_BODY_MAX_BYTES = 3 * len("id") + len("=") + 3 * (5 + 1 + 64)
_CLASSIC_TYPES = {"tr": "payment", "ord": "order", "sub": "subscription", "re": "refund"}

_PAYMENT_KINDS = {
    "payment.pending": PaymentEventKind.PENDING,
    "payment.authorized": PaymentEventKind.AUTHORIZED,
    "payment.paid": PaymentEventKind.SUCCEEDED,
    "payment.failed": PaymentEventKind.FAILED,
    "payment.canceled": PaymentEventKind.CANCELED,
    "payment.expired": PaymentEventKind.CANCELED,
}
# Only refund.refunded moves money for good: queued, pending and processing refunds can still be
# canceled or fail, and the ledger has no way to take a counted refund back.
_REFUND_TYPES = {"refund.refunded"}


def classic_resource_id(body: bytes) -> str:
    """The ``id`` of a classic Mollie webhook body; anything else is a VerificationError."""
    if len(body) > _CLASSIC_BODY_MAX_BYTES:
        raise VerificationError("unsigned body is not a classic Mollie webhook")
    try:
        params = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError("unsigned body is not a classic Mollie webhook") from exc
    ids = params.get("id", [])
    if set(params) != {"id"} or len(ids) != 1 or not _CLASSIC_ID.fullmatch(ids[0]):
        raise VerificationError("unsigned body is not a classic Mollie webhook")
    return ids[0]


class MollieOptions(ProviderOptions, frozen=True):
    allow_classic: bool = False
    classic_dedup_seconds: Annotated[int, Meta(gt=0, le=86_400)] = CLASSIC_DEDUP_SECONDS


class MollieProvider(HmacProvider):
    Options = MollieOptions
    provider_type = "mollie"
    scheme = SCHEME
    event_fields = EventFields(time=("createdAt",))
    sample_event_types = (
        "payment.paid",
        "payment.authorized",
        "payment.failed",
        "payment.canceled",
        "payment.expired",
        "refund.refunded",
        "refund.failed",
    )

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        options = convert(config.options, MollieOptions, f"providers.{config.name}")
        self.allow_classic = options.allow_classic
        self.classic_dedup_seconds = options.classic_dedup_seconds

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        if self.allow_classic and not request.headers.get("x-mollie-signature"):
            return [self._classic_event(request.body)]
        return super().verify(request)

    def _classic_event(self, body: bytes) -> VerifiedEvent:
        resource_id = classic_resource_id(body)
        now = int(self.clock())
        window_start = now - now % self.classic_dedup_seconds
        prefix = resource_id.partition("_")[0]
        return VerifiedEvent(
            event_id=f"{resource_id}@{window_start}",
            event_type=f"classic.{_CLASSIC_TYPES.get(prefix, prefix)}",
            payload=body,
            occurred_at=None,
            verified=False,
        )

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        if not webhook.verified:
            return []  # a classic webhook: no state in the body, nothing to apply
        event = parse_json_object(webhook.payload)
        entity = dig(event, "_embedded", "entity")
        entity = entity if isinstance(entity, dict) else None
        fields: dict[str, Any] = {}
        if webhook.event_type in _PAYMENT_KINDS:
            kind = _PAYMENT_KINDS[webhook.event_type]
            # A "simple" payload names the payment without embedding it: state, but no amount.
            if entity is not None:
                payment_id = require_str(entity, "id", "_embedded.entity")
            else:
                payment_id = require_str(event, "entityId")
        elif webhook.event_type in _REFUND_TYPES:
            if entity is None:
                return []  # a simple payload names the refund, not the payment it belongs to
            kind = PaymentEventKind.REFUNDED
            payment_id = require_str(entity, "paymentId", "_embedded.entity")
            fields["refund_id"] = require_str(entity, "id", "_embedded.entity")
        else:
            return []
        amount = entity.get("amount") if entity else None
        if isinstance(amount, dict):
            currency = normalize_currency(amount.get("currency"))
            fields["currency"] = currency
            fields["amount"] = major_to_minor(amount.get("value"), currency)
        return [PaymentEvent.of(webhook, payment_id=payment_id, kind=kind, **fields)]
