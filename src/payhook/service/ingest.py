"""Ingest: one delivery flow for every runtime, as a sans-I/O pair.

``prepare`` verifies a delivery and builds the rows to store (or answers at once: unknown
provider, failed verification, unusable body); the runtime stores the rows (the embedded
writer, or DynamoDB + SQS); ``finish`` turns the store's answer (or its error) into the
provider's answer. ``STATUSES`` is the one table of what a provider sees; the embedded server,
the receiver Lambda, the OpenAPI document and ``payhook send`` all use it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from payhook.core.clock import Clock, system_clock
from payhook.core.model import (
    IngestOutcome,
    Stored,
    StoredWebhook,
    VerifiedEvent,
    WebhookRequest,
    webhook_id_for,
)
from payhook.core.ports import WebhookStore
from payhook.errors import (
    PayhookError,
    PayloadError,
    PayloadTooLargeError,
    StorageUnavailableError,
    UnknownProviderError,
    VerificationError,
)
from payhook.providers.base import Provider, ProviderResponse

log = logging.getLogger("payhook.ingest")

Answer = ProviderResponse

#: What a provider sees: status -> (error code, when). Verification failures use the
#: provider's own status (401, or GoCardless's 498).
STATUSES: dict[int, tuple[str, str]] = {
    200: ("", "stored durably and processing scheduled, or a duplicate (changes nothing)"),
    400: ("invalid_payload", "authentic, but the body cannot be used or stored"),
    401: ("verification_failed", "verification failed; nothing was stored"),
    404: ("unknown_provider", "no provider of that name is configured"),
    405: ("method_not_allowed", "webhooks are delivered with POST"),
    413: ("body_too_large", "the body is over the limit"),
    503: ("storage_unavailable", "nothing was acknowledged; retry later"),
}
RETRY_AFTER_SECONDS = 5

# Identity fields are stored as TEXT and shown in logs and tables: bounded, and valid text.
MAX_ID_LENGTH = 512
# Event times are unix seconds within years 1970..9999 (beyond, datetime cannot show them).
MAX_EVENT_TIME = 253_402_300_799.0

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def problem(status: int, reason: str, error: str | None = None) -> Answer:
    """An error answer: ``{"error": code, "reason": ...}`` (503 also says when to retry)."""
    code = error or STATUSES[status][0]
    body = _ENCODER.encode({"error": code, "reason": reason}).encode()
    headers: tuple[tuple[str, str], ...] = ()
    if status == 503:
        headers = (("retry-after", str(RETRY_AFTER_SECONDS)),)
    elif status == 405:
        headers = (("allow", "GET, POST"),)
    return Answer(status, body, headers=headers)


METHOD_NOT_ALLOWED = problem(405, STATUSES[405][1])


@dataclass(frozen=True, slots=True)
class PreparedDelivery:
    """A verified delivery: the rows to store, and what answering needs."""

    provider: Provider
    webhooks: list[StoredWebhook]


class Ingest:
    """The receive step, shared by the HTTP server and the receiver Lambda."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        clock: Clock = system_clock,
        body_limit_bytes: int = 1024 * 1024,
    ) -> None:
        self.providers = providers
        self.clock = clock
        self.body_limit_bytes = body_limit_bytes

    def provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise UnknownProviderError(f"no provider named {name!r} is configured") from None

    # the flow --------------------------------------------------------------------------

    def route(self, name: str) -> Provider | Answer:
        """The provider a delivery is for, or the 404 answer."""
        try:
            return self.provider(name)
        except UnknownProviderError as exc:
            return problem(404, str(exc))

    def body_limit(self, provider: Provider) -> int:
        """The most a delivery for ``provider`` may send: the server's limit, or less."""
        return min(self.body_limit_bytes, provider.max_body_bytes or self.body_limit_bytes)

    def too_large(self, provider: Provider) -> Answer:
        return problem(413, f"the body limit is {self.body_limit(provider)} bytes")

    def challenge(self, name: str, request: WebhookRequest) -> Answer:
        """A GET: the provider's verification challenge, or 405 (404 if unknown)."""
        provider = self.route(name)
        if isinstance(provider, Answer):
            return provider
        return provider.challenge(request) or METHOD_NOT_ALLOWED

    def prepare(self, name: str, request: WebhookRequest) -> PreparedDelivery | Answer:
        """Verify and split a delivery into the rows to store, or answer it at once."""
        provider = self.route(name)
        if isinstance(provider, Answer):
            return provider
        if len(request.body) > self.body_limit(provider):
            return self.too_large(provider)
        try:
            return PreparedDelivery(provider, self.verify(name, request))
        except VerificationError as exc:
            log.info(
                "verification failed",
                extra={"provider": name, "code": exc.code, "reason": str(exc)},
            )
            refused = problem(provider.rejection_status, str(exc), "verification_failed")
            return replace(refused, verification=exc.code)
        except PayloadError as exc:
            log.warning("unusable payload", extra={"provider": name, "reason": str(exc)})
            return problem(400, str(exc))

    def finish(self, prepared: PreparedDelivery, stored: Sequence[Stored] | PayhookError) -> Answer:
        """The provider's answer once the store answered (or failed)."""
        name = prepared.provider.name
        if isinstance(stored, PayloadTooLargeError):
            log.warning("payload too large to store", extra={"provider": name})
            return problem(413, str(stored))
        if isinstance(stored, PayloadError):  # the store can never hold it: do not retry
            log.warning("payload cannot be stored", extra={"provider": name, "reason": str(stored)})
            return problem(400, str(stored))
        if isinstance(stored, PayhookError):
            reason = str(stored) if isinstance(stored, StorageUnavailableError) else repr(stored)
            log.error("storage unavailable", extra={"provider": name, "reason": reason})
            return problem(503, "try again later")
        outcomes = []
        for webhook, result in zip(prepared.webhooks, stored, strict=True):
            if result is Stored.CONFLICT:
                log.warning(
                    "conflicting delivery: an unsigned event id already names other bytes",
                    extra={
                        "provider": name,
                        "webhook_id": webhook.webhook_id,
                        "event_id": webhook.event_id,
                    },
                )
            outcomes.append(
                IngestOutcome(
                    webhook.webhook_id,
                    webhook.event_id,
                    duplicate=result is Stored.DUPLICATE,
                    conflict=result is Stored.CONFLICT,
                )
            )
        return prepared.provider.acknowledge(outcomes)

    def receive(self, name: str, request: WebhookRequest, store: WebhookStore) -> Answer:
        """The whole flow, synchronously (the receiver Lambda, tests)."""
        prepared = self.prepare(name, request)
        if isinstance(prepared, Answer):
            return prepared
        try:
            stored: Sequence[Stored] | PayhookError = store.store(prepared.webhooks)
        except PayhookError as exc:
            stored = exc
        return self.finish(prepared, stored)

    # rows ------------------------------------------------------------------------------

    def verify(self, name: str, request: WebhookRequest) -> list[StoredWebhook]:
        """Verify a delivery into the rows it stores, each checked to be storable.

        Raises UnknownProviderError, VerificationError or PayloadError."""
        provider = self.provider(name)
        now = self.clock()
        rows = []
        headers = None
        for event in provider.verify(request):
            check_storable(event)
            headers = headers or _ENCODER.encode(dict(request.headers))  # once, when authentic
            rows.append(stored_webhook(provider, event, now, headers=headers))
        # A batch may repeat an event: the store keeps it once and answers a duplicate.
        return rows


def stored_webhook(
    provider: Provider,
    event: VerifiedEvent,
    now: float,
    source: str = "webhook",
    headers: str | None = None,
) -> StoredWebhook:
    """The row an event is stored as, whether a delivery or an events API brought it."""
    return StoredWebhook(
        webhook_id=webhook_id_for(provider.name, event.dedup_key or event.event_id),
        provider=provider.name,
        provider_type=provider.provider_type,
        event_id=event.event_id,
        event_type=event.event_type,
        payload=event.payload,
        received_at=now,
        occurred_at=event.occurred_at,
        verified=event.verified,
        id_signed=event.dedup_key is None,
        source=source,
        headers=headers,
    )


def check_storable(event: VerifiedEvent) -> None:
    """What a group commit writes is checked before it joins the group: one event that can
    never be stored must fail alone, with a 400, not fail its neighbours."""
    for field, value in (("event id", event.event_id), ("event type", event.event_type)):
        if not isinstance(value, str) or not value:
            raise PayloadError(f"the {field} is missing or not text")
        if len(value) > MAX_ID_LENGTH:
            raise PayloadError(f"the {field} is over {MAX_ID_LENGTH} characters")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise PayloadError(f"the {field} is not valid text (a lone surrogate)") from None
    when = event.occurred_at
    if when is not None and not (
        isinstance(when, (int, float))
        and not isinstance(when, bool)
        and math.isfinite(when)
        and 0 <= when <= MAX_EVENT_TIME
    ):
        raise PayloadError("the event time is out of range")
    if not isinstance(event.payload, bytes):
        raise PayloadError("the event payload is not bytes")
