"""What operators see of stored things, one shape for the CLI's JSON and the console.

Keys are camelCase; times are ISO 8601 in UTC; amounts stay integer minor units beside their
currency (``money`` writes ``20.00 USD`` for tables). Payloads appear only when asked for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook
from payhook.core.money import format_minor
from payhook.core.payment import PaymentEvent


def iso(timestamp: float | None) -> str | None:
    """``2026-12-05T04:10:33Z`` (milliseconds only when there are some)."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def money(amount: int | None, currency: str | None) -> str:
    """``20.00 USD`` (ISO 4217 exponents); the bare minor units when no currency is known."""
    if amount is None:
        return "-"
    return format_minor(amount, currency) if currency else str(amount)


def flags(webhook: StoredWebhook) -> list[str]:
    """What a reader must know about a webhook's identity: ``conflict`` when another delivery
    carries its unsigned event id with other bytes, ``unverified`` for Mollie classic posts,
    ``purged`` when retention removed its payload."""
    found = ["conflict"] if webhook.conflict else []
    if not webhook.verified:
        found.append("unverified")
    if webhook.purged:
        found.append("purged")
    return found


def webhook_view(webhook: StoredWebhook, *, payload: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "webhookId": webhook.webhook_id,
        "provider": webhook.provider,
        "providerType": webhook.provider_type,
        "eventId": webhook.event_id,
        "eventType": webhook.event_type,
        "status": str(webhook.status),
        "receivedAt": iso(webhook.received_at),
        "occurredAt": iso(webhook.occurred_at),
        "processedAt": iso(webhook.processed_at),
        "attempts": webhook.attempts,
        "error": webhook.error,
        "flags": flags(webhook),
        "payloadBytes": len(webhook.payload),
    }
    if payload:
        view["payload"] = webhook.payload.decode("utf-8", "replace")
    return view


def payment_view(record: PaymentRecord, *, history: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "provider": record.provider,
        "paymentId": record.payment_id,
        "status": str(record.status),
        "currency": record.currency,
        "amount": record.amount,
        "amountAuthorized": record.amount_authorized,
        "amountCaptured": record.amount_captured,
        "amountRefunded": record.amount_refunded,
        "amountDisputed": record.amount_disputed,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "flags": list(record.flags),
        "version": record.version,
    }
    if history:
        view["history"] = [event_view(e) for e in record.events]
    return view


def event_view(event: PaymentEvent) -> dict[str, Any]:
    return {
        "occurredAt": iso(event.occurred_at),
        "kind": str(event.kind),
        "eventId": event.event_id,
        "eventType": event.event_type,
        "amount": event.amount,
        "currency": event.currency,
        "refundId": event.refund_id,
        "disputeId": event.dispute_id,
        "refundedTotal": event.refunded_total,
        "capturedHint": event.captured_hint,
    }
