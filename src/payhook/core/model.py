"""The webhook and payment-event model shared by every provider and backend."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class WebhookStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    DEAD = "dead"


class Stored(StrEnum):
    """What storing one webhook did."""

    NEW = "new"
    DUPLICATE = "duplicate"  # the same event was stored before: nothing changed
    #: Stored, but another stored delivery carries the same unsigned event id with other
    #: bytes: one of them was re-sent under a borrowed id. Kept and flagged, never dropped.
    CONFLICT = "conflict"


def webhook_id_for(provider: str, dedup_key: str) -> str:
    """The webhook id is derived from (provider, dedup key), so dedup is a primary-key check.

    The dedup key is the event id when the provider signs it, else what the signature does
    cover (see ``VerifiedEvent.dedup_key``)."""
    digest = hashlib.sha256(f"{provider}\x00{dedup_key}".encode()).hexdigest()
    return f"wh_{digest[:32]}"


def body_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One HTTP delivery exactly as received.

    ``headers`` keys are lower-case; ``url`` is the request path (signatures that cover a URL,
    like Square's, use the configured notification URL instead).
    """

    body: bytes
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    url: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class VerifiedEvent(NamedTuple):
    """One authenticated provider event; a batch delivery yields several.

    ``payload`` is the event's own bytes (the whole body, or one item of a batch) and is what
    processing reads later; ``occurred_at`` is the provider's event time (unix seconds) if it
    gives one.

    Identity comes only from signed data. When the provider signs its event id, the id is
    the dedup key (``dedup_key`` None). When it sends the id outside the signature (Shopify's
    and Razorpay's headers), ``dedup_key`` is what the signature does cover: the body's digest,
    with what legitimately tells two events with one body apart (Shopify's topic). The same
    bytes under a new id are then a duplicate, and the same id with other bytes a conflict.
    """

    event_id: str
    event_type: str
    payload: bytes
    occurred_at: float | None = None
    verified: bool = True
    dedup_key: str | None = None


@dataclass(frozen=True, slots=True)
class StoredWebhook:
    """A webhook as the store holds it."""

    webhook_id: str
    provider: str
    provider_type: str
    event_id: str
    event_type: str
    payload: bytes
    received_at: float
    status: WebhookStatus = WebhookStatus.RECEIVED
    occurred_at: float | None = None
    verified: bool = True
    processed_at: float | None = None
    attempts: int = 0
    error: str | None = None
    #: False when ``event_id`` came from outside the signature (see ``VerifiedEvent``).
    id_signed: bool = True
    #: Another stored delivery carries the same unsigned event id with other bytes.
    conflict: bool = False
    #: When retention removed the payload (the row, its digest and its dedup key stay).
    purged_at: float | None = None
    #: Where the event came from: "webhook" (a verified delivery) or "api" (fetched from the
    #: provider's events API by a backfill or reconciliation run).
    source: str = "webhook"
    #: The delivery's request headers as a JSON object (names lower-case); None for events
    #: fetched from an API, rows stored before they were kept, and purged rows.
    headers: str | None = None

    @property
    def purged(self) -> bool:
        return self.purged_at is not None

    @property
    def event_time(self) -> float:
        """When the event happened: the provider's time when it gives one, else when received."""
        return self.occurred_at if self.occurred_at is not None else self.received_at

    def summary(self) -> dict[str, Any]:
        """The JSON shape the CLI and API print (no payload)."""
        return {
            "webhookId": self.webhook_id,
            "provider": self.provider,
            "providerType": self.provider_type,
            "eventId": self.event_id,
            "eventType": self.event_type,
            "status": str(self.status),
            "verified": self.verified,
            "receivedAt": self.received_at,
            "occurredAt": self.occurred_at,
            "processedAt": self.processed_at,
            "attempts": self.attempts,
            "error": self.error,
            "idSigned": self.id_signed,
            "conflict": self.conflict,
        }


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    webhook_id: str
    event_id: str
    duplicate: bool
    conflict: bool = False
