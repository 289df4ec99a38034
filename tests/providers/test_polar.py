"""Polar: Standard Webhooks keyed with the raw dashboard secret, and the payment mapping.

The reference is what Polar's own SDK does: ``standardwebhooks.Webhook(base64(secret))``. What
every provider keeps (a changed body, a missing header or a foreign secret refused, rotation,
tolerance both ways) is in the contract suite, tests/providers/test_contract.py.
"""

from __future__ import annotations

import base64
import itertools
import json
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook

from payhook.core import ledger
from payhook.core.ledger import PaymentStatus
from payhook.core.model import StoredWebhook, WebhookRequest
from payhook.core.payment import PaymentEvent
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.polar import PolarProvider
from payhook.service.ingest import Ingest
from tests.conftest import FakeClock, load_sample

SECRET = "polar_whs_3LrQk8sVb0xN2mY7tH5dJ9cF4gA6pE1w"
OTHER_SECRET = "polar_whs_rotated_Zq8W2e4R6t"
MSG_ID = "msg_2hXc7ZqLkP0vNw4RtYb9"
NOW = 1_750_436_470
ORDER_ID = "b6a0c5a2-6a9e-4c53-9d2b-3f4e3f0e7a11"
ORDER_PAID = load_sample("polar", "order.paid")

# Hypothesis examples for the library-agreement test (reported in the README table).
SDK_AGREEMENT_CASES = 200


def reference(secret: str) -> Webhook:
    """What Polar's SDK builds from a dashboard secret."""
    return Webhook(base64.b64encode(secret.encode()).decode())


def provider(
    clock: Callable[[], float] | None = None,
    secrets: tuple[str, ...] = (SECRET,),
    tolerance: int | None = None,
) -> PolarProvider:
    config = ProviderConfig("polar", "polar", secrets, tolerance)
    return PolarProvider(config, clock or FakeClock(NOW))


def request(
    body: bytes = ORDER_PAID, secret: str = SECRET, timestamp: int = NOW, msg_id: str = MSG_ID
) -> WebhookRequest:
    signature = reference(secret).sign(
        msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode()
    )
    return WebhookRequest(
        body=body,
        headers={
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        },
    )


def edited(name: str, edit: Any) -> bytes:
    event = json.loads(load_sample("polar", name))
    edit(event)
    return json.dumps(event).encode()


# -- verification --------------------------------------------------------------------------


def test_accepts_a_delivery_signed_as_polar_signs_it() -> None:
    [event] = provider().verify(request())
    assert (event.event_id, event.event_type, event.payload) == (MSG_ID, "order.paid", ORDER_PAID)
    assert event.occurred_at == datetime(2025, 6, 20, 16, 21, 10, 123456, tzinfo=UTC).timestamp()


def test_the_key_is_the_raw_secret_not_a_decoded_whsec_secret() -> None:
    # Treating the dashboard secret as whsec_<base64> (as the generic provider would) fails.
    signature = Webhook("whsec_" + base64.b64encode(b"other").decode()).sign(
        MSG_ID, datetime.fromtimestamp(NOW, UTC), ORDER_PAID.decode()
    )
    delivery = request()
    delivery.headers["webhook-signature"] = signature
    with pytest.raises(VerificationError):
        provider().verify(delivery)


def test_an_authentic_body_without_type_or_json_is_a_payload_error() -> None:
    for body in (b"not json", edited("order.paid", lambda e: e.pop("type"))):
        with pytest.raises(PayloadError):
            provider().verify(request(body))


def test_occurred_at_falls_back_to_the_signed_timestamp() -> None:
    body = edited("order.paid", lambda e: e.update(timestamp="yesterday"))
    assert provider().verify(request(body))[0].occurred_at == float(NOW)


def test_the_libraries_accept_our_sample_deliveries() -> None:
    now = time.time()
    ours = provider(lambda: now)
    for event_type in ours.sample_event_types:
        sample = ours.sample_request(event_type)
        assert reference(SECRET).verify(sample.body, sample.headers)["type"] == event_type
        [event] = ours.payment_events(stored(sample, ours))
        assert event.kind is (K.SUCCEEDED if event_type == "order.paid" else K.REFUNDED)


_SECRETS = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=48)
_BODIES = st.builds(
    lambda data, ascii_only: json.dumps(
        {"type": "order.paid", "data": data}, ensure_ascii=ascii_only
    ).encode(),
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=10), max_size=4),
    st.booleans(),
)
_OFFSETS = st.one_of(st.integers(-290, 290), st.integers(-86_400, -310), st.integers(310, 86_400))
_MUTATIONS = ["none", "body", "timestamp", "id", "signature", "secret", "drop_header"]


@pytest.mark.sdk
@settings(max_examples=SDK_AGREEMENT_CASES, deadline=None)
@given(
    body=_BODIES,
    secret=_SECRETS,
    offset=_OFFSETS,
    mutation=st.sampled_from(_MUTATIONS),
    data=st.data(),
)
def test_agrees_with_standardwebhooks_given_the_base64_secret(
    body: bytes, secret: str, offset: int, mutation: str, data: st.DataObject
) -> None:
    now = time.time()
    delivery = request(body, secret, int(now) + offset)
    headers, held = dict(delivery.headers), secret
    if mutation == "body":
        i = data.draw(st.sampled_from([i for i, b in enumerate(body) if b < 0x80]))
        body = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
    elif mutation == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)
    elif mutation == "id":
        headers["webhook-id"] += "x"
    elif mutation == "signature":
        sig = headers["webhook-signature"]
        i = data.draw(st.integers(3, 42))
        headers["webhook-signature"] = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]
    elif mutation == "secret":
        held = data.draw(_SECRETS.filter(lambda other: other != secret))
    elif mutation == "drop_header":
        del headers[data.draw(st.sampled_from(sorted(headers)))]
    try:
        provider(lambda: now, (held,)).verify(WebhookRequest(body, headers))
        ours = True
    except VerificationError:
        ours = False
    for library in (reference(held), SvixWebhook(base64.b64encode(held.encode()).decode())):
        try:
            library.verify(body, headers)
            theirs = True
        except WebhookVerificationError:
            theirs = False
        assert ours == theirs
    assert ours == (mutation == "none" and -300 < offset < 300)


# -- payment events ------------------------------------------------------------------------


def stored(delivery: WebhookRequest, ours: PolarProvider | None = None) -> StoredWebhook:
    ours = ours or provider()
    [webhook] = Ingest({"polar": ours}).verify("polar", delivery)
    return webhook


def payment_events(body: bytes) -> list[PaymentEvent]:
    return provider().payment_events(stored(request(body)))


def test_order_paid_is_a_payment_of_the_order_total() -> None:
    [event] = payment_events(ORDER_PAID)
    assert (event.kind, event.payment_id, event.amount, event.currency) == (
        K.SUCCEEDED,
        ORDER_ID,
        2500,
        "USD",
    )
    assert event.event_id == MSG_ID


def test_order_refunded_counts_the_refunded_tax_too() -> None:
    [event] = payment_events(load_sample("polar", "order.refunded"))
    assert (event.kind, event.payment_id) == (K.REFUNDED, ORDER_ID)
    assert (event.refunded_total, event.captured_hint, event.amount) == (1250, 2500, None)


def test_refund_created_is_one_refund_of_the_order_tax_included() -> None:
    [event] = payment_events(load_sample("polar", "refund.created"))
    assert (event.kind, event.payment_id, event.refund_id, event.amount) == (
        K.REFUNDED,
        ORDER_ID,
        "4f2b8d6a-0c1e-4a3b-9d5f-7e8a6c4b2d10",
        1250,
    )


@pytest.mark.parametrize("status", ["pending", "failed", "canceled"])
def test_a_refund_that_has_not_succeeded_is_not_a_refund(status: str) -> None:
    body = edited("refund.created", lambda e: e["data"].update(status=status))
    assert payment_events(body) == []


def test_refund_updated_to_succeeded_is_a_refund() -> None:
    body = edited("refund.created", lambda e: e.update(type="refund.updated"))
    [event] = payment_events(body)
    assert (event.kind, event.refund_id) == (K.REFUNDED, "4f2b8d6a-0c1e-4a3b-9d5f-7e8a6c4b2d10")


def test_order_and_refund_events_combine_whatever_the_order() -> None:
    events = [
        *payment_events(ORDER_PAID),
        *payment_events(load_sample("polar", "order.refunded")),
        *payment_events(load_sample("polar", "refund.created")),
    ]
    for order in itertools.permutations(events):
        record = ledger.derive("polar", ORDER_ID, list(order))
        assert (record.status, record.amount_captured, record.amount_refunded) == (
            PaymentStatus.PARTIALLY_REFUNDED,
            2500,
            1250,
        )
        assert record.flags == ()


def test_a_full_refund_of_a_taxed_order_reads_as_refunded() -> None:
    def full(event: dict[str, Any]) -> None:
        event["data"].update(status="refunded", refunded_amount=2000, refunded_tax_amount=500)

    events = [*payment_events(ORDER_PAID), *payment_events(edited("order.refunded", full))]
    record = ledger.derive("polar", ORDER_ID, events)
    assert (record.status, record.amount_refunded) == (PaymentStatus.REFUNDED, 2500)


def test_other_events_give_no_payment_event() -> None:
    body = edited("order.paid", lambda e: e.update(type="subscription.active"))
    assert payment_events(body) == []
