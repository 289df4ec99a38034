"""Sample PayPal deliveries, signed with a key of our own (``payhook send`` and tests).

Only PayPal holds PayPal's signing key, so a sample verifies only where the verifier trusts the
sample signer's certificate (tests, with their own CA).
"""

from __future__ import annotations

import json
import secrets as _secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from payhook.core.model import WebhookRequest
from payhook.errors import PayloadError
from payhook.providers.paypal.signature import ALGORITHM, sign_paypal


@dataclass(frozen=True, slots=True)
class PayPalSampleSigner:
    """A key of our own for ``sample_request``; its certificate must be at ``cert_url``."""

    private_key: RSAPrivateKey
    cert_url: str


def sample_delivery(
    signer: PayPalSampleSigner, webhook_id: str, event_type: str, now: int
) -> WebhookRequest:
    """A delivery of ``event_type`` signed the way PayPal signs, with ``signer``'s key."""
    body = json.dumps(sample_event(event_type, now), separators=(",", ":")).encode()
    transmission_id = str(uuid.uuid4())
    time = _iso(now)
    signature = sign_paypal(signer.private_key, transmission_id, time, webhook_id, body)
    return WebhookRequest(
        body=body,
        headers={
            "content-type": "application/json",
            "paypal-auth-algo": ALGORITHM,
            "paypal-auth-version": "v2",
            "paypal-cert-url": signer.cert_url,
            "paypal-transmission-id": transmission_id,
            "paypal-transmission-sig": signature,
            "paypal-transmission-time": time,
        },
    )


def _pid(length: int = 17) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(_secrets.choice(alphabet) for _ in range(length))


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sample_event(event_type: str, now: int, amount: str = "30.00") -> dict[str, Any]:
    """A PayPal event shaped like the real thing (Payments v2, Disputes v1)."""
    api = "https://api.paypal.com"
    capture_id = _pid()
    money = {"currency_code": "USD", "value": amount}
    resource: dict[str, Any]
    if event_type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
        refund_id = _pid()
        resource_type = "refund"
        resource = {
            "id": refund_id,
            "amount": money,
            "seller_payable_breakdown": {
                "gross_amount": money,
                "net_amount": money,
                "total_refunded_amount": money,
            },
            "status": "COMPLETED",
            "create_time": _iso(now - 5),
            "update_time": _iso(now - 5),
            "links": [
                {"href": f"{api}/v2/payments/refunds/{refund_id}", "rel": "self", "method": "GET"},
                {"href": f"{api}/v2/payments/captures/{capture_id}", "rel": "up", "method": "GET"},
            ],
        }
    elif event_type.startswith("PAYMENT.CAPTURE."):
        status = event_type.rsplit(".", 1)[1]
        order_id = _pid()
        resource_type = "capture"
        resource = {
            "id": capture_id,
            "amount": money,
            "final_capture": True,
            "seller_protection": {"status": "ELIGIBLE"},
            "status": status,
            "supplementary_data": {"related_ids": {"order_id": order_id}},
            "create_time": _iso(now - 5),
            "update_time": _iso(now - 5),
            "links": [
                {"href": f"{api}/v2/payments/captures/{capture_id}", "rel": "self"},
                {"href": f"{api}/v2/checkout/orders/{order_id}", "rel": "up", "method": "GET"},
            ],
        }
    elif event_type.startswith("CUSTOMER.DISPUTE."):
        resolved = event_type.endswith("RESOLVED")
        resource_type = "dispute"
        resource = {
            "dispute_id": f"PP-D-{_secrets.randbelow(10**6):06d}",
            "create_time": _iso(now - 86400),
            "update_time": _iso(now - 5),
            "disputed_transactions": [
                {"seller_transaction_id": capture_id, "buyer_transaction_id": _pid()}
            ],
            "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
            "status": "RESOLVED" if resolved else "OPEN",
            "dispute_amount": money,
            "dispute_life_cycle_stage": "CHARGEBACK" if resolved else "INQUIRY",
        }
        if resolved:
            resource["dispute_outcome"] = {
                "outcome_code": "RESOLVED_BUYER_FAVOUR",
                "amount_refunded": money,
            }
    else:
        raise PayloadError(f"no PayPal sample for event type {event_type!r}")
    event_id = f"WH-{_pid()}-{_pid()}"
    return {
        "id": event_id,
        "event_version": "1.0",
        "create_time": _iso(now),
        "resource_type": resource_type,
        "resource_version": "2.0",
        "event_type": event_type,
        "summary": f"{event_type} for $ {amount} USD",
        "resource": resource,
        "links": [
            {"href": f"{api}/v1/notifications/webhooks-events/{event_id}", "rel": "self"},
        ],
    }
