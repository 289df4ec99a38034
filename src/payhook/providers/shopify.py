"""Shopify: ``X-Shopify-Hmac-SHA256`` is the base64 HMAC-SHA256 of the raw body (app secret).

The base64 text is compared as sent, as Shopify's own libraries do: no lenient decoding.
Only the body is signed. The topic (``X-Shopify-Topic``) and the delivery id
(``X-Shopify-Webhook-Id``, else ``X-Shopify-Event-Id``) are not, so a captured body can be
replayed under another topic or id. The defences: the webhook's identity is the topic and the
body's digest, so the same body under a new id is a duplicate and the same id with other bytes
is stored as a conflicting delivery (never dropped); and a topic moves the ledger only when the
body agrees with it (``orders/cancelled`` needs ``cancelled_at``, ``orders/paid`` a paid
``financial_status``, refunds and disputes an ``order_id``). The event time comes from the
body (``updated_at``, else ``created_at``), never from the unsigned ``X-Shopify-Triggered-At``.
There is no signed timestamp, hence no replay window to check.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, body_digest
from payhook.core.money import major_to_minor, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError
from payhook.providers.base import iso_timestamp, parse_json_object
from payhook.providers.events import json_id
from payhook.providers.hmac import HmacEngine, HmacProvider, HmacScheme, Signed

SCHEME = HmacScheme(header="X-Shopify-Hmac-SHA256", encoding="base64")

_CREATED_KINDS = {
    "pending": PaymentEventKind.PENDING,
    "authorized": PaymentEventKind.AUTHORIZED,
    "paid": PaymentEventKind.SUCCEEDED,
}
_PAID_STATUSES = {"paid", "partially_refunded", "refunded"}
_DISPUTE_KINDS = {
    "needs_response": PaymentEventKind.DISPUTE_OPENED,
    "under_review": PaymentEventKind.DISPUTE_OPENED,
    "won": PaymentEventKind.DISPUTE_WON,
    "lost": PaymentEventKind.DISPUTE_LOST,
    "accepted": PaymentEventKind.DISPUTE_LOST,  # the merchant accepted the chargeback
}


class ShopifyProvider(HmacProvider):
    provider_type = "shopify"
    scheme = SCHEME
    sample_event_types = (
        "orders/paid",
        "orders/create",
        "orders/cancelled",
        "refunds/create",
        "disputes/create",
        "disputes/update",
    )

    def events(self, request: WebhookRequest, signed: Signed) -> list[VerifiedEvent]:
        topic = request.header("x-shopify-topic")
        if not topic:
            raise PayloadError("missing X-Shopify-Topic header")
        event_id = request.header("x-shopify-webhook-id") or request.header("x-shopify-event-id")
        if not event_id:
            raise PayloadError("missing X-Shopify-Webhook-Id and X-Shopify-Event-Id headers")
        body = parse_json_object(request.body)
        occurred = iso_timestamp(body.get("updated_at")) or iso_timestamp(body.get("created_at"))
        return [
            VerifiedEvent(
                event_id=event_id,
                event_type=topic,
                payload=request.body,
                occurred_at=occurred,
                # Neither the id nor the topic is signed: the body's digest identifies the
                # event, with the topic, since orders/create and orders/updated may carry the
                # same body.
                dedup_key=f"{topic}\x00{body_digest(request.body)}",
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        body = parse_json_object(webhook.payload)
        topic = webhook.event_type
        fields: dict[str, Any] = {}
        kind: PaymentEventKind | None
        if topic.startswith("orders/"):
            kind = _order_kind(topic, body)
            payment_id = _object_id(body, "id")
            if kind is not None and body.get("total_price") is not None:
                fields["currency"] = normalize_currency(body.get("currency"))
                fields["amount"] = major_to_minor(body["total_price"], fields["currency"])
        elif topic == "refunds/create":
            kind = PaymentEventKind.REFUNDED
            payment_id = _object_id(body, "order_id")
            fields["refund_id"] = _object_id(body, "id")
            refunded = _refunded(body)
            if refunded is None:
                return []  # a refund that returned no money (restock or note only)
            fields["amount"], fields["currency"] = refunded
        elif topic in ("disputes/create", "disputes/update"):
            kind = _DISPUTE_KINDS.get(str(body.get("status")))
            payment_id = _object_id(body, "order_id")
            fields["dispute_id"] = _object_id(body, "id")
            if kind is not None and body.get("amount") is not None:
                fields["currency"] = normalize_currency(body.get("currency"))
                fields["amount"] = major_to_minor(body["amount"], fields["currency"])
        else:
            return []
        if kind is None:
            return []
        return [PaymentEvent.of(webhook, payment_id=payment_id, kind=kind, **fields)]

    def sample_name(self, event_type: str) -> str:
        return event_type.replace("/", "-")  # orders/paid: samples/shopify/orders-paid.json

    def sample_headers(self, event_type: str, body: bytes) -> dict[str, str]:
        triggered = datetime.fromtimestamp(int(self.clock()), UTC).isoformat()
        return {
            "x-shopify-topic": event_type,
            "x-shopify-webhook-id": str(uuid.uuid4()),
            "x-shopify-event-id": str(uuid.uuid4()),
            "x-shopify-triggered-at": triggered.replace("+00:00", "Z"),
            "x-shopify-shop-domain": "payhook-sample.myshopify.com",
            "x-shopify-api-version": "2025-01",
        }


def _object_id(data: dict[str, Any], key: str) -> str:
    """Shopify ids are JSON integers; the ledger keys on their decimal text."""
    value = json_id(data.get(key))
    if value is None:
        raise PayloadError(f"body.{key} is missing or not an id")
    return value


def _order_kind(topic: str, order: dict[str, Any]) -> PaymentEventKind | None:
    status = order.get("financial_status")
    if topic == "orders/create":
        return _CREATED_KINDS.get(str(status))
    if topic == "orders/paid":
        return PaymentEventKind.SUCCEEDED if status in _PAID_STATUSES else None
    if topic == "orders/cancelled":
        return PaymentEventKind.CANCELED if order.get("cancelled_at") else None
    return None


def _refunded(refund: dict[str, Any]) -> tuple[int, str] | None:
    """Sum of the refund's successful money movements, in minor units."""
    transactions = refund.get("transactions")
    if not isinstance(transactions, list):
        raise PayloadError("body.transactions is missing or not a list")
    total = 0
    currency: str | None = None
    for tx in transactions:
        if not isinstance(tx, dict) or tx.get("kind") != "refund" or tx.get("status") != "success":
            continue
        tx_currency = normalize_currency(tx.get("currency"))
        if currency not in (None, tx_currency):
            raise PayloadError("refund transactions are in more than one currency")
        currency = tx_currency
        total += major_to_minor(tx.get("amount"), tx_currency)
    return (total, currency) if currency is not None else None


def shopify_signature(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-SHA256`` of ``body`` (tests sign captured bodies with it)."""
    engine = HmacEngine(SCHEME, [secret], tolerance_seconds=0, clock=lambda: 0.0)
    return engine.sign(body)["x-shopify-hmac-sha256"]
