"""PayPal events as canonical payment events (Payments v2 captures, v1 sales, Disputes v1).

Amounts are decimal strings in MAJOR units, converted with the currency's exponent.
"""

from __future__ import annotations

import re
from typing import Any

from payhook.core.model import StoredWebhook
from payhook.core.money import major_to_minor, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError
from payhook.providers.base import dig, parse_json_object, require_str

_PAYMENT_KINDS = {
    "PAYMENT.CAPTURE.COMPLETED": PaymentEventKind.SUCCEEDED,
    "PAYMENT.CAPTURE.PENDING": PaymentEventKind.PENDING,
    "PAYMENT.CAPTURE.DENIED": PaymentEventKind.FAILED,
    "PAYMENT.CAPTURE.DECLINED": PaymentEventKind.FAILED,
    # v1 sales: still sent for subscriptions (billing agreements).
    "PAYMENT.SALE.COMPLETED": PaymentEventKind.SUCCEEDED,
    "PAYMENT.SALE.PENDING": PaymentEventKind.PENDING,
    "PAYMENT.SALE.DENIED": PaymentEventKind.FAILED,
}
# A reversal is money PayPal takes back (typically a chargeback). Its resource is a refund of
# the capture, so it counts as a refund: the dispute itself arrives as CUSTOMER.DISPUTE.* with
# its own id, and mapping the reversal to dispute_lost would count the disputed amount twice.
_REFUND_TYPES = frozenset(
    {
        "PAYMENT.CAPTURE.REFUNDED",
        "PAYMENT.CAPTURE.REVERSED",
        "PAYMENT.SALE.REFUNDED",
        "PAYMENT.SALE.REVERSED",
    }
)
_OUTCOMES = {
    "RESOLVED_BUYER_FAVOUR": PaymentEventKind.DISPUTE_LOST,
    "ACCEPTED": PaymentEventKind.DISPUTE_LOST,  # the seller accepted the claim
    "RESOLVED_SELLER_FAVOUR": PaymentEventKind.DISPUTE_WON,
    "CANCELED_BY_BUYER": PaymentEventKind.DISPUTE_WON,
    "DENIED": PaymentEventKind.DISPUTE_WON,  # the claim was denied
    # PayPal paid the buyer; the seller keeps the funds.
    "RESOLVED_WITH_PAYOUT": PaymentEventKind.DISPUTE_WON,
}
_CAPTURE_PATH = re.compile(r"/v2/payments/captures/([A-Za-z0-9-]+)/?$")


def paypal_payment_events(webhook: StoredWebhook) -> list[PaymentEvent]:
    """The payment events of one stored PayPal event (empty when it is about no payment)."""
    event = parse_json_object(webhook.payload)
    resource = event.get("resource")
    if not isinstance(resource, dict):
        raise PayloadError("PayPal event has no resource object")
    event_type = webhook.event_type
    if event_type in _PAYMENT_KINDS:
        amount, currency = _money(resource.get("amount"))
        return [
            PaymentEvent.of(
                webhook,
                payment_id=require_str(resource, "id", "resource"),
                kind=_PAYMENT_KINDS[event_type],
                amount=amount,
                currency=currency,
            )
        ]
    if event_type in _REFUND_TYPES:
        return _refund_events(resource, webhook)
    if event_type in ("CUSTOMER.DISPUTE.CREATED", "CUSTOMER.DISPUTE.RESOLVED"):
        return _dispute_events(event_type, resource, webhook)
    return []


def _money(value: object) -> tuple[int | None, str | None]:
    """(minor units, currency) of a v2 ``{value, currency_code}`` or v1 ``{total, currency}``."""
    if not isinstance(value, dict):
        return None, None
    amount = value.get("value", value.get("total"))
    currency = value.get("currency_code", value.get("currency"))
    if amount is None or currency is None:
        return None, None
    code = normalize_currency(currency)
    return major_to_minor(amount, code), code


def _refund_events(resource: dict[str, Any], webhook: StoredWebhook) -> list[PaymentEvent]:
    if resource.get("status") in ("FAILED", "CANCELLED"):
        return []
    amount, currency = _money(resource.get("amount"))
    total, _ = _money(
        dig(resource, "seller_payable_breakdown", "total_refunded_amount")
        or resource.get("total_refunded_amount")
    )
    # v1 sale refunds state the amount as negative ("-0.01"): a refund amount is not.
    return [
        PaymentEvent.of(
            webhook,
            payment_id=_refunded_payment_id(resource),
            kind=PaymentEventKind.REFUNDED,
            amount=abs(amount) if amount is not None else None,
            currency=currency,
            refund_id=require_str(resource, "id", "resource"),
            refunded_total=abs(total) if total is not None else None,
        )
    ]


def _refunded_payment_id(resource: dict[str, Any]) -> str:
    sale_id = resource.get("sale_id")
    if isinstance(sale_id, str) and sale_id:
        return sale_id
    links = resource.get("links")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("rel") == "up":
            match = _CAPTURE_PATH.search(str(link.get("href", "")))
            if match:
                return match.group(1)
    capture_id = dig(resource, "supplementary_data", "related_ids", "capture_id")
    if isinstance(capture_id, str) and capture_id:
        return capture_id
    raise PayloadError("PayPal refund names no capture (no 'up' link to a capture)")


def _dispute_events(
    event_type: str, resource: dict[str, Any], webhook: StoredWebhook
) -> list[PaymentEvent]:
    outcome = _OUTCOMES.get(str(dig(resource, "dispute_outcome", "outcome_code")))
    kind = PaymentEventKind.DISPUTE_OPENED if event_type == "CUSTOMER.DISPUTE.CREATED" else outcome
    if kind is None:
        return []
    dispute_id = require_str(resource, "dispute_id", "resource")
    transactions = resource.get("disputed_transactions")
    payment_ids = [
        t["seller_transaction_id"]
        for t in (transactions if isinstance(transactions, list) else [])
        if isinstance(t, dict) and isinstance(t.get("seller_transaction_id"), str)
    ]
    amount, currency = _money(resource.get("dispute_amount"))
    # One dispute may cover several payments; its amount then belongs to none of them alone.
    share = amount if len(payment_ids) == 1 else None
    return [
        PaymentEvent.of(
            webhook,
            payment_id=payment_id,
            kind=kind,
            amount=share,
            currency=currency,
            dispute_id=dispute_id,
        )
        for payment_id in payment_ids
    ]
