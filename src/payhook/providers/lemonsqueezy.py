"""Lemon Squeezy: ``X-Signature`` is the hex HMAC-SHA256 of the raw body (key: the signing secret).

The lower-case hex is compared as the documented recipe compares it, exactly. Only the body is
signed: there is no timestamp (so no replay window to check) and no event id. The event id is
derived as the SHA-256 of the raw body. Lemon Squeezy resends the same bytes when it retries, so
a redelivery dedups; and since only signed bytes go into the id, replaying a captured body with
an altered (unsigned) ``X-Event-Name`` header cannot create a second event, and one that
disagrees with the signed ``meta.event_name`` makes the delivery unusable. Two different facts
never share a body: each carries its own event name and ``updated_at``.

Lemon Squeezy ids are sequential per resource type, so an order and a subscription invoice can
share a number: payment ids are namespaced with the JSON:API type (``orders/1``,
``subscription-invoices/1``).
"""

from __future__ import annotations

from typing import Any

from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, body_digest
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError
from payhook.providers.base import dig, iso_timestamp, parse_json_object, require_str
from payhook.providers.hmac import HmacProvider, HmacScheme, Signed

SCHEME = HmacScheme(header="X-Signature")
EVENT_NAME_HEADER = "x-event-name"


class LemonSqueezyProvider(HmacProvider):
    provider_type = "lemonsqueezy"
    scheme = SCHEME
    #: Its dashboard takes any signing secret of 6 to 40 characters.
    min_secret_bytes = 6
    sample_event_types = ("order_created", "order_refunded", "subscription_payment_success")

    def events(self, request: WebhookRequest, signed: Signed) -> list[VerifiedEvent]:
        body = parse_json_object(request.body)
        attributes = dig(body, "data", "attributes")
        updated = attributes.get("updated_at") if isinstance(attributes, dict) else None
        return [
            VerifiedEvent(
                event_id=body_digest(request.body),
                event_type=_event_name(request, body),
                payload=request.body,
                occurred_at=iso_timestamp(updated),
            )
        ]

    def sample_headers(self, event_type: str, body: bytes) -> dict[str, str]:
        return {EVENT_NAME_HEADER: event_type}

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        resource = _RESOURCE.get(webhook.event_type)
        if resource is None:
            return []
        body = parse_json_object(webhook.payload)
        data = body.get("data")
        attributes = data.get("attributes") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(attributes, dict):
            raise PayloadError("Lemon Squeezy event has no data.attributes")
        if data.get("type") != resource:
            raise PayloadError(f"data.type: got {data.get('type')!r}, expected {resource!r}")
        total = minor_amount(attributes.get("total"))
        fields: dict[str, Any] = {}
        if webhook.event_type == "order_created":
            kind = _ORDER_STATUS.get(str(attributes.get("status")))
            if kind is None:
                return []
            fields["amount"] = total
        elif webhook.event_type == "order_refunded":
            kind = PaymentEventKind.REFUNDED
            fields["refunded_total"] = _refunded_total(attributes, total)
            # Only a paid order can be refunded, so its total was captured.
            fields["captured_hint"] = total
        else:
            kind = PaymentEventKind.SUCCEEDED
            fields["amount"] = total
        return [
            PaymentEvent.of(
                webhook,
                payment_id=f"{resource}/{require_str(data, 'id', 'data')}",
                kind=kind,
                currency=normalize_currency(attributes.get("currency")),
                **fields,
            )
        ]


_ORDER_STATUS = {
    "paid": PaymentEventKind.SUCCEEDED,
    "pending": PaymentEventKind.PENDING,
    "failed": PaymentEventKind.FAILED,
}
# Event name -> the JSON:API resource type its data must be.
_RESOURCE = {
    "order_created": "orders",
    "order_refunded": "orders",
    "subscription_payment_success": "subscription-invoices",
}


def _event_name(request: WebhookRequest, body: dict[str, Any]) -> str:
    in_body = dig(body, "meta", "event_name")
    in_header = request.header(EVENT_NAME_HEADER)
    if in_body is not None and (not isinstance(in_body, str) or not in_body):
        raise PayloadError("meta.event_name is not a string")
    if in_body and in_header and in_body != in_header:
        raise PayloadError("X-Event-Name header and meta.event_name disagree")
    name = in_body or in_header
    if not name:
        raise PayloadError("no event name in X-Event-Name or meta.event_name")
    return name


def _refunded_total(attributes: dict[str, Any], total: int) -> int:
    if attributes.get("refunded_amount") is not None:
        return minor_amount(attributes["refunded_amount"])
    # Payloads from before refunded_amount existed only say whether the order was refunded.
    if attributes.get("refunded") is True:
        return total
    raise PayloadError("order_refunded without refunded_amount")
