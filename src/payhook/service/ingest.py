"""Ingest: verify a delivery, store each event once, schedule processing, then acknowledge."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from payhook.core.clock import Clock, system_clock
from payhook.core.model import IngestOutcome, StoredWebhook, WebhookRequest, webhook_id_for
from payhook.core.ports import WebhookStore
from payhook.errors import UnknownProviderError
from payhook.providers.base import Provider, ProviderResponse

log = logging.getLogger("payhook.ingest")


@dataclass(frozen=True, slots=True)
class PreparedDelivery:
    provider: Provider
    webhooks: list[StoredWebhook]

    def acknowledge(self, duplicates: list[bool]) -> ProviderResponse:
        outcomes = [
            IngestOutcome(w.webhook_id, w.event_id, dup)
            for w, dup in zip(self.webhooks, duplicates, strict=True)
        ]
        if log.isEnabledFor(logging.DEBUG):  # per-webhook detail; the audit trail has it all
            for outcome, webhook in zip(outcomes, self.webhooks, strict=True):
                log.debug(
                    "webhook accepted",
                    extra={
                        "provider": webhook.provider,
                        "webhook_id": webhook.webhook_id,
                        "event_type": webhook.event_type,
                        "duplicate": outcome.duplicate,
                    },
                )
        return self.provider.acknowledge(outcomes)


class Ingest:
    """The receive step, shared by the HTTP server and the receiver Lambda."""

    def __init__(self, providers: Mapping[str, Provider], clock: Clock = system_clock) -> None:
        self.providers = providers
        self.clock = clock

    def provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise UnknownProviderError(f"no provider named {name!r} is configured") from None

    def prepare(self, provider_name: str, request: WebhookRequest) -> PreparedDelivery:
        """Verify and split a delivery.

        Raises VerificationError, PayloadError or UnknownProviderError.
        """
        provider = self.provider(provider_name)
        events = provider.verify(request)
        now = self.clock()
        webhooks = [
            StoredWebhook(
                webhook_id=webhook_id_for(provider.name, event.event_id),
                provider=provider.name,
                provider_type=provider.type_name,
                event_id=event.event_id,
                event_type=event.event_type,
                payload=event.payload,
                received_at=now,
                occurred_at=event.occurred_at,
                verified=event.verified,
            )
            for event in events
        ]
        # A batch may repeat an event: store it once, acknowledge it as a duplicate.
        return PreparedDelivery(provider, webhooks)

    def receive(
        self, provider_name: str, request: WebhookRequest, store: WebhookStore
    ) -> ProviderResponse:
        """Synchronous receive: verify, store durably, acknowledge."""
        prepared = self.prepare(provider_name, request)
        return prepared.acknowledge(store.store(prepared.webhooks))
