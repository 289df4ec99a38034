"""Deliveries straight to a running embedded runtime's writer, and what it processed."""

from __future__ import annotations

from payhook.core.model import Stored
from payhook.runtimes.embedded import EmbeddedRuntime
from tests.conftest import count_rows


def deliver(runtime: EmbeddedRuntime) -> str:
    """Verify and store a new Stripe sample through the runtime's writer; its webhook id."""
    request = runtime.providers["stripe"].sample_request("payment_intent.succeeded")
    webhooks = runtime.ingest.verify("stripe", request)
    assert runtime.writer.store(webhooks) == [Stored.NEW]
    return webhooks[0].webhook_id


def processed_count(runtime: EmbeddedRuntime) -> int:
    return count_rows(runtime.path, "webhooks WHERE status = 'processed'")
