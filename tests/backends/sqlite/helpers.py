"""Signed Stripe deliveries turned into stored webhooks, for backend tests."""

from __future__ import annotations

import json

from payhook.core.clock import Clock
from payhook.core.model import StoredWebhook, WebhookRequest
from payhook.providers.base import ProviderConfig
from payhook.providers.stripe import StripeProvider, sample_event, stripe_signature
from payhook.service.ingest import Ingest

SECRET = "whsec_test_secret"


def stripe_provider(clock: Clock) -> StripeProvider:
    return StripeProvider(ProviderConfig("stripe", "stripe", (SECRET,)), clock)


def signed_request(event: dict[str, object], now: int) -> WebhookRequest:
    body = json.dumps(event).encode()
    header = f"t={now},v1={stripe_signature(SECRET, now, body)}"
    return WebhookRequest(body=body, headers={"stripe-signature": header})


def stored(
    clock: Clock, event_type: str = "payment_intent.succeeded", **kw: object
) -> StoredWebhook:
    now = int(clock())
    ingest = Ingest({"stripe": stripe_provider(clock)}, clock)
    request = signed_request(sample_event(event_type, now, **kw), now)  # type: ignore[arg-type]
    return ingest.verify("stripe", request)[0]
