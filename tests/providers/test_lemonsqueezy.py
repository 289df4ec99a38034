"""Lemon Squeezy: hex HMAC-SHA256 of the raw body, a derived event id, and the payment mapping.

There is no official Python SDK to compare with: the reference is the documented recipe
(``hmac(secret, raw body, sha256).hexdigest()`` compared with ``X-Signature``), written out
below independently of the code under test. What every provider keeps (samples, tampering, a
missing signature, rotation) is in test_contract.py.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payhook.core import ledger
from payhook.core.ledger import PaymentStatus
from payhook.core.model import StoredWebhook, WebhookRequest
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.lemonsqueezy import LemonSqueezyProvider
from payhook.service.ingest import Ingest
from tests.conftest import FakeClock, load_sample

SECRET = "ls_signing_secret_6735"
ORDER_CREATED = load_sample("lemonsqueezy", "order_created")
ORDER_REFUNDED = load_sample("lemonsqueezy", "order_refunded")
INVOICE_PAID = load_sample("lemonsqueezy", "subscription_payment_success")

# Hypothesis examples for the reference-agreement test (reported in the README table).
REFERENCE_AGREEMENT_CASES = 200


def reference_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def provider(secrets: tuple[str, ...] = (SECRET,)) -> LemonSqueezyProvider:
    return LemonSqueezyProvider(ProviderConfig("lemon", "lemonsqueezy", secrets), FakeClock())


def request(
    body: bytes = ORDER_CREATED,
    signature: str | None = None,
    event_name: str | None = "order_created",
) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if event_name is not None:
        headers["x-event-name"] = event_name
    headers["x-signature"] = reference_signature(SECRET, body) if signature is None else signature
    return WebhookRequest(body=body, headers=headers)


def edited(event_type: str, edit: Any) -> bytes:
    event = json.loads(load_sample("lemonsqueezy", event_type))
    edit(event)
    return json.dumps(event).encode()


# -- verification --------------------------------------------------------------------------


def test_accepts_an_authentic_delivery() -> None:
    [event] = provider().verify(request())
    assert event.event_type == "order_created"
    assert event.payload == ORDER_CREATED
    assert event.occurred_at == datetime(2024, 6, 20, 16, 21, 9, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "signature", ["", "zz" * 32, "AB" * 32, "sha256=" + "ab" * 32, "ab" * 31, "\u00e9" * 64]
)
def test_rejects_a_malformed_signature(signature: str) -> None:
    with pytest.raises(VerificationError):
        provider().verify(request(signature=signature))


def test_an_authentic_body_that_is_not_a_json_object_is_a_payload_error() -> None:
    for body in (b"not json", b"[]", b"\xff"):
        with pytest.raises(PayloadError):
            provider().verify(request(body))


# -- event type and event id ---------------------------------------------------------------


def test_event_type_comes_from_the_header_or_the_body() -> None:
    assert provider().verify(request(event_name=None))[0].event_type == "order_created"
    without_meta = edited("order_created", lambda e: e["meta"].pop("event_name"))
    assert provider().verify(request(without_meta))[0].event_type == "order_created"


def test_header_and_body_event_names_that_disagree_are_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="disagree"):
        provider().verify(request(event_name="order_refunded"))


def test_a_delivery_without_any_event_name_is_a_payload_error() -> None:
    without_meta = edited("order_created", lambda e: e["meta"].pop("event_name"))
    with pytest.raises(PayloadError):
        provider().verify(request(without_meta, event_name=None))


def test_an_identical_redelivery_gets_the_same_webhook_id() -> None:
    ingest = Ingest({"lemon": provider()})
    first = ingest.verify("lemon", request())[0]
    again = ingest.verify("lemon", request(event_name=None))[0]
    assert first.event_id == "sha256:" + hashlib.sha256(ORDER_CREATED).hexdigest()
    assert again.webhook_id == first.webhook_id


def test_a_different_body_gets_a_different_event_id() -> None:
    ids = {
        provider().verify(request(body, event_name=None))[0].event_id
        for body in (ORDER_CREATED, ORDER_REFUNDED, ORDER_CREATED + b"\n")
    }
    assert len(ids) == 3


_BODIES = st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4).map(
    lambda attrs: json.dumps({"meta": {"event_name": "order_created"}, "data": attrs}).encode()
)
_SECRETS = st.text(min_size=6, max_size=40)


@settings(max_examples=REFERENCE_AGREEMENT_CASES, deadline=None)
@given(
    body=_BODIES,
    secret=_SECRETS,
    mutation=st.sampled_from(["none", "body", "signature", "secret", "upper", "header"]),
    data=st.data(),
)
def test_agrees_with_the_documented_recipe_on_every_accept_or_reject(
    body: bytes, secret: str, mutation: str, data: st.DataObject
) -> None:
    signature = reference_signature(secret, body)
    held = secret
    if mutation == "body":
        i = data.draw(st.integers(0, len(body) - 1))
        body = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
    elif mutation == "signature":
        i = data.draw(st.integers(0, 63))
        signature = signature[:i] + ("0" if signature[i] != "0" else "1") + signature[i + 1 :]
    elif mutation == "secret":
        held = data.draw(_SECRETS.filter(lambda other: other != secret))
    elif mutation == "upper":
        signature = signature.upper()
    headers = {} if mutation == "header" else {"x-signature": signature}
    reference = hmac.compare_digest(reference_signature(held, body), headers.get("x-signature", ""))
    try:
        LemonSqueezyProvider(ProviderConfig("l", "lemonsqueezy", (held,))).verify(
            WebhookRequest(body=body, headers=headers)
        )
        ours = True
    except VerificationError:
        ours = False
    assert ours == reference == (mutation == "none")


# -- payment events ------------------------------------------------------------------------


def stored(body: bytes) -> StoredWebhook:
    [webhook] = Ingest({"lemon": provider()}).verify("lemon", request(body, event_name=None))
    return webhook


def payment_events(body: bytes) -> list[PaymentEvent]:
    return provider().payment_events(stored(body))


def with_status(status: str) -> bytes:
    return edited("order_created", lambda e: e["data"]["attributes"].update(status=status))


@pytest.mark.parametrize(
    ("status", "kind"), [("paid", K.SUCCEEDED), ("pending", K.PENDING), ("failed", K.FAILED)]
)
def test_order_created_maps_its_status(status: str, kind: PaymentEventKind) -> None:
    [event] = payment_events(with_status(status))
    assert (event.kind, event.payment_id, event.amount, event.currency) == (
        kind,
        "orders/3862551",
        2419,
        "EUR",
    )


def test_order_created_with_another_status_gives_no_payment_event() -> None:
    assert payment_events(with_status("refunded")) == []


def test_order_refunded_gives_the_cumulative_refund_of_the_order() -> None:
    [event] = payment_events(ORDER_REFUNDED)
    assert (event.kind, event.payment_id, event.currency) == (K.REFUNDED, "orders/3862551", "EUR")
    assert (event.refunded_total, event.captured_hint, event.amount) == (1000, 2419, None)


def test_a_legacy_order_refunded_without_refunded_amount_counts_the_whole_total() -> None:
    def legacy(event: dict[str, Any]) -> None:
        del event["data"]["attributes"]["refunded_amount"]
        event["data"]["attributes"].update(refunded=True, status="refunded")

    [event] = payment_events(edited("order_refunded", legacy))
    assert event.refunded_total == 2419


def test_order_events_combine_in_the_ledger_whatever_the_order() -> None:
    events = [
        *payment_events(ORDER_CREATED),
        *payment_events(ORDER_REFUNDED),
    ]
    for order in itertools.permutations(events):
        record = ledger.derive("lemon", "orders/3862551", list(order))
        assert (record.status, record.amount_captured, record.amount_refunded) == (
            PaymentStatus.PARTIALLY_REFUNDED,
            2419,
            1000,
        )


def test_subscription_payment_success_is_a_payment_of_the_invoice() -> None:
    [event] = payment_events(INVOICE_PAID)
    assert (event.kind, event.payment_id, event.amount, event.currency) == (
        K.SUCCEEDED,
        "subscription-invoices/3862551",
        999,
        "USD",
    )


def test_an_order_and_an_invoice_with_the_same_number_are_different_payments() -> None:
    [order] = payment_events(ORDER_CREATED)
    [invoice] = payment_events(INVOICE_PAID)
    assert order.payment_id != invoice.payment_id


def test_data_of_the_wrong_type_is_a_payload_error() -> None:
    body = edited("order_created", lambda e: e["data"].update(type="subscriptions"))
    with pytest.raises(PayloadError, match=r"data\.type"):
        payment_events(body)


def test_other_events_give_no_payment_event() -> None:
    body = edited("order_created", lambda e: e["meta"].update(event_name="license_key_created"))
    assert payment_events(body) == []


def test_samples_name_their_event_in_the_header_and_the_body_and_differ_each_time() -> None:
    ours = provider()
    for event_type in ours.sample_event_types:
        first, second = ours.sample_request(event_type), ours.sample_request(event_type)
        assert first.headers["x-signature"] == reference_signature(SECRET, first.body)
        assert first.headers["x-event-name"] == event_type
        assert json.loads(first.body)["meta"]["event_name"] == event_type
        # The event id is the body's digest: two samples must not be one event, nor (as
        # `payhook send` shows them) one payment; ids are digit strings, as Lemon Squeezy's.
        assert ours.verify(first)[0].event_id != ours.verify(second)[0].event_id
        ids = [json.loads(r.body)["data"]["id"] for r in (first, second)]
        assert ids[0] != ids[1]
        assert all(isinstance(i, str) and i.isdigit() for i in ids)
