"""The canonical event processing publishes for every ledger change of a payment's state."""

from __future__ import annotations

import hashlib
from typing import Any

from payhook.core.clock import iso_utc
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook

CANONICAL_EVENT_TYPE = "payment.updated"


def canonical_event(
    record: PaymentRecord, previous: PaymentRecord | None, webhook: StoredWebhook
) -> dict[str, Any]:
    """The event published for one applied ledger change; its id is stable across retries."""
    event_id = hashlib.sha256(
        f"{webhook.webhook_id}\x00{record.provider}\x00{record.payment_id}".encode()
    ).hexdigest()[:32]
    return {
        "id": f"pe_{event_id}",
        "type": CANONICAL_EVENT_TYPE,
        "provider": record.provider,
        "paymentId": record.payment_id,
        "status": str(record.status),
        "previousStatus": str(previous.status) if previous else None,
        "payment": record.summary(),
        "cause": {
            "webhookId": webhook.webhook_id,
            "eventId": webhook.event_id,
            "eventType": webhook.event_type,
        },
        "occurredAt": iso_utc(record.updated_at),
    }
