"""The base of every HMAC provider: its scheme, its samples, and what its signed body says."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from payhook.core.clock import Clock, system_clock
from payhook.core.model import VerifiedEvent, WebhookRequest
from payhook.providers.base import Provider, ProviderConfig
from payhook.providers.events import EventFields
from payhook.providers.hmac.engine import HmacEngine, Signed
from payhook.providers.hmac.scheme import HmacScheme
from payhook.providers.samples import sample_bytes


class HmacProvider(Provider):
    """A provider whose deliveries carry an HMAC: its facts are ``scheme`` (how it signs), its
    sample event types (``payhook/samples/<type>/``) and ``event_fields`` (where the signed
    body states id, type and time, unless ``events`` says otherwise); ``payment_events`` is its
    mapping."""

    #: Usually a class attribute; a provider configured in TOML alone (generic) sets its own
    #: before calling ``HmacProvider.__init__``.
    scheme: HmacScheme
    #: Where the signed JSON body states the event's id, type and time (``events`` reads it).
    event_fields: ClassVar[EventFields] = EventFields()

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        self.engine = HmacEngine(
            self.scheme,
            config.secrets,
            tolerance_seconds=self.tolerance_seconds,
            clock=clock,
            url=self.signed_url(),
            where=f"providers.{config.name}",
        )

    def signed_url(self) -> str:
        """The URL a ``{url}`` in the scheme stands for (Square signs its notification URL)."""
        return ""

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        return self.events(request, self.engine.verify(request))

    def events(self, request: WebhookRequest, signed: Signed) -> list[VerifiedEvent]:
        """The events of an authenticated delivery, identified from signed data only."""
        return [self.event_fields.event(request.body)]

    def sample_request(self, event_type: str | None = None, **values: Any) -> WebhookRequest:
        event_type = event_type or self.sample_event_types[0]
        now = int(self.clock())
        body = sample_bytes(self.provider_type, self.sample_name(event_type), now, **values)
        headers = {"content-type": "application/json", **self.sample_headers(event_type, body)}
        message_id = f"msg_{secrets.token_hex(12)}" if self.scheme.id_header else None
        headers |= self.engine.sign(body, headers, timestamp=now, message_id=message_id)
        return WebhookRequest(body=body, headers=headers)

    def sample_headers(self, event_type: str, body: bytes) -> dict[str, str]:
        """Headers a sample carries besides its signature (Shopify's topic, say)."""
        return {}

    def sample_name(self, event_type: str) -> str:
        """The sample file (``payhook/samples/<type>/<name>.json``) of an event type: the type
        itself, unless it cannot be a file name (Shopify's topics hold a ``/``)."""
        return event_type
