"""Shopify: ``X-Shopify-Hmac-SHA256`` is the base64 HMAC-SHA256 of the raw body (app secret).

Only the body is signed. The topic (``X-Shopify-Topic``) and the delivery id
(``X-Shopify-Webhook-Id``, else ``X-Shopify-Event-Id``) are not, so a captured body can be
replayed under another topic or id. The defences: the webhook's identity is the topic and the
body's digest, so the same body under a new id is a duplicate and the same id with other bytes
is stored as a conflicting delivery (never dropped); and a topic moves the ledger only when the
body agrees with it (``orders/cancelled`` needs ``cancelled_at``, ``orders/paid`` a paid
``financial_status``, refunds and disputes an ``order_id``). There is no signed timestamp,
hence no replay window to check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as _secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, body_digest
from payhook.core.money import major_to_minor, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import (
    HmacKeys,
    HmacProvider,
    any_signature_matches,
    iso_timestamp,
    parse_json_object,
)

SIGNATURE_HEADER = "x-shopify-hmac-sha256"
TOPIC_HEADER = "x-shopify-topic"
WEBHOOK_ID_HEADER = "x-shopify-webhook-id"
EVENT_ID_HEADER = "x-shopify-event-id"
TRIGGERED_AT_HEADER = "x-shopify-triggered-at"
K = PaymentEventKind

_CREATED_KINDS = {"pending": K.PENDING, "authorized": K.AUTHORIZED, "paid": K.SUCCEEDED}
_PAID_STATUSES = {"paid", "partially_refunded", "refunded"}
_DISPUTE_KINDS = {
    "needs_response": K.DISPUTE_OPENED,
    "under_review": K.DISPUTE_OPENED,
    "won": K.DISPUTE_WON,
    "lost": K.DISPUTE_LOST,
    "accepted": K.DISPUTE_LOST,  # the merchant accepted the chargeback
}


def shopify_signature(secret: str, body: bytes) -> str:
    mac = hmac.digest(secret.encode(), body, hashlib.sha256)
    return base64.b64encode(mac).decode()


def verify_shopify_signature(body: bytes, header: str | None, keys: HmacKeys) -> None:
    """Raise VerificationError unless ``header`` is the body's signature under some secret.

    The base64 text is compared as sent, as Shopify's own libraries do: no lenient decoding.
    """
    if not header:
        raise VerificationError("missing X-Shopify-Hmac-SHA256 header")
    expected = [base64.b64encode(mac) for mac in keys.digests(body)]
    if not any_signature_matches(expected, [header]):
        raise VerificationError("no Shopify signature matches")


def _object_id(data: dict[str, Any], key: str) -> str:
    """Shopify ids are JSON integers; the ledger keys on their decimal text."""
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise PayloadError(f"body.{key} is missing or not an id")


class ShopifyProvider(HmacProvider):
    type_name = "shopify"
    sample_event_types = (
        "orders/paid",
        "orders/create",
        "orders/cancelled",
        "refunds/create",
        "disputes/create",
        "disputes/update",
    )

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        verify_shopify_signature(request.body, request.headers.get(SIGNATURE_HEADER), self.keys)
        topic = request.header(TOPIC_HEADER)
        if not topic:
            raise PayloadError("missing X-Shopify-Topic header")
        event_id = request.header(WEBHOOK_ID_HEADER) or request.header(EVENT_ID_HEADER)
        if not event_id:
            raise PayloadError("missing X-Shopify-Webhook-Id and X-Shopify-Event-Id headers")
        body = parse_json_object(request.body)
        occurred = (
            iso_timestamp(body.get("updated_at"))
            or iso_timestamp(body.get("created_at"))
            or iso_timestamp(request.header(TRIGGERED_AT_HEADER))
        )
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
            kind = K.REFUNDED
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
        return [
            PaymentEvent(
                provider=webhook.provider,
                payment_id=payment_id,
                kind=kind,
                event_id=webhook.event_id,
                event_type=topic,
                occurred_at=webhook.event_time,
                **fields,
            )
        ]

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        topic = event_type or self.sample_event_types[0]
        now = int(self.clock())
        body = json.dumps(sample_body(topic, now), separators=(",", ":")).encode()
        triggered = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                SIGNATURE_HEADER: shopify_signature(self.config.secrets[0], body),
                TOPIC_HEADER: topic,
                WEBHOOK_ID_HEADER: str(uuid.uuid4()),
                EVENT_ID_HEADER: str(uuid.uuid4()),
                TRIGGERED_AT_HEADER: triggered,
                "x-shopify-shop-domain": "payhook-sample.myshopify.com",
                "x-shopify-api-version": "2025-01",
            },
        )


def _order_kind(topic: str, order: dict[str, Any]) -> PaymentEventKind | None:
    status = order.get("financial_status")
    if topic == "orders/create":
        return _CREATED_KINDS.get(str(status))
    if topic == "orders/paid":
        return K.SUCCEEDED if status in _PAID_STATUSES else None
    if topic == "orders/cancelled":
        return K.CANCELED if order.get("cancelled_at") else None
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


def sample_body(topic: str, now: int, price: str = "49.90") -> dict[str, Any]:
    """A Shopify webhook body shaped like the real thing (REST Admin API, trimmed)."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat()
    order_id = 5_000_000_000_000 + _secrets.randbelow(10**12)
    if topic.startswith("orders/"):
        status = {"orders/create": "pending", "orders/cancelled": "voided"}.get(topic, "paid")
        return {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": "#1001",
            "currency": "USD",
            "total_price": price,
            "subtotal_price": price,
            "total_tax": "0.00",
            "financial_status": status,
            "cancelled_at": stamp if topic == "orders/cancelled" else None,
            "cancel_reason": "customer" if topic == "orders/cancelled" else None,
            "created_at": stamp,
            "updated_at": stamp,
        }
    if topic == "refunds/create":
        refund_id = 900_000_000_000 + _secrets.randbelow(10**11)
        return {
            "id": refund_id,
            "order_id": order_id,
            "created_at": stamp,
            "note": "Customer changed their mind",
            "restock": True,
            "transactions": [
                {
                    "id": refund_id + 1,
                    "order_id": order_id,
                    "kind": "refund",
                    "gateway": "shopify_payments",
                    "status": "success",
                    "amount": price,
                    "currency": "USD",
                    "created_at": stamp,
                }
            ],
        }
    if topic in ("disputes/create", "disputes/update"):
        return {
            "id": 285_000_000 + _secrets.randbelow(10**6),
            "order_id": order_id,
            "type": "chargeback",
            "amount": price,
            "currency": "USD",
            "reason": "fraudulent",
            "network_reason_code": "4837",
            "status": "needs_response" if topic == "disputes/create" else "won",
            "evidence_due_by": stamp,
            "initiated_at": stamp,
        }
    raise PayloadError(f"no Shopify sample for topic {topic!r}")
