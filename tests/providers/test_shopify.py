"""Shopify: verification quirks, topic/body cross-checks, mapping, agreement with a bare reference.

What every provider keeps (a changed body, a missing header or a foreign secret refused,
rotation, unsigned headers that never change identity) is in the contract suite,
tests/providers/test_contract.py. Deliveries here are signed with the bare reference, never
with the engine under test; bodies are the samples (``payhook/samples/shopify``) as recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from payhook.core import ledger
from payhook.core.ledger import PaymentStatus
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, webhook_id_for
from payhook.core.payment import PaymentEvent
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.shopify import ShopifyProvider, shopify_signature
from tests.conftest import FakeClock, load_event, load_sample

SECRET = "shpss_test_secret_0123456789abcdef"
OLD_SECRET = "shpss_previous_secret_fedcba9876543210"
ORDER_ID = "820982911946154508"


def provider(*secrets: str) -> ShopifyProvider:
    return ShopifyProvider(ProviderConfig("shop", "shopify", secrets or (SECRET,)), FakeClock())


def reference_signature(secret: str, body: bytes) -> str:
    """Shopify's documented signature written out: base64 HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signed(
    body: bytes, topic: str = "orders/paid", secret: str = SECRET, **headers: str
) -> WebhookRequest:
    return WebhookRequest(
        body,
        {
            "x-shopify-hmac-sha256": reference_signature(secret, body),
            "x-shopify-topic": topic,
            "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "x-shopify-shop-domain": "example.myshopify.com",
            **headers,
        },
    )


def stored(p: ShopifyProvider, event: VerifiedEvent) -> StoredWebhook:
    return StoredWebhook(
        webhook_id=webhook_id_for(p.name, event.event_id),
        provider=p.name,
        provider_type=p.provider_type,
        event_id=event.event_id,
        event_type=event.event_type,
        payload=event.payload,
        received_at=p.clock(),
        occurred_at=event.occurred_at,
    )


def body_of(name: str) -> bytes:
    """A sample as recorded (``orders-paid``), or a fixture that is no sample (``*.json``)."""
    return load_event("shopify", name) if name.endswith(".json") else load_sample("shopify", name)


def payment_events(name: str, topic: str) -> list[PaymentEvent]:
    p = provider()
    [verified] = p.verify(signed(body_of(name), topic))
    return p.payment_events(stored(p, verified))


# --- known answer -------------------------------------------------------------------------


def test_known_vector_verifies() -> None:
    # From an independent implementation's tests (SQLPage, sqlpage.hmac 'sha256-base64'),
    # re-derived with `openssl dgst -sha256 -hmac ... -binary | base64`.
    body = b'{"id":1234567890,"email":"customer@example.com","total_price":"123.45"}'
    expected = "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw="
    assert shopify_signature("test-webhook-secret", body) == expected
    request = WebhookRequest(
        body,
        {
            "x-shopify-hmac-sha256": expected,
            "x-shopify-topic": "orders/create",
            "x-shopify-webhook-id": "w1",
        },
    )
    [verified] = provider("test-webhook-secret").verify(request)
    assert (verified.event_id, verified.event_type) == ("w1", "orders/create")


# --- verification -------------------------------------------------------------------------


def test_reads_the_event_from_the_headers_and_the_time_from_the_body() -> None:
    [verified] = provider().verify(signed(load_sample("shopify", "orders-paid")))
    assert verified.event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert verified.event_type == "orders/paid"
    assert verified.occurred_at == 1640995200.0  # 2021-12-31T19:00:00-05:00


def test_the_unsigned_triggered_at_header_never_sets_the_event_time() -> None:
    request = signed(b'{"id":1}', **{"x-shopify-triggered-at": "2021-12-31T19:00:00Z"})
    [verified] = provider().verify(request)
    assert verified.occurred_at is None  # the receive time stands in


def test_falls_back_to_the_event_id_header_for_deduplication() -> None:
    request = signed(b'{"id":1}', **{"x-shopify-webhook-id": "", "x-shopify-event-id": "ev-9"})
    [verified] = provider().verify(request)
    assert verified.event_id == "ev-9"


def test_an_authentic_delivery_without_any_id_header_is_a_payload_error() -> None:
    request = signed(b'{"id":1}', **{"x-shopify-webhook-id": ""})
    with pytest.raises(PayloadError, match="Webhook-Id"):
        provider().verify(request)


def test_an_authentic_delivery_without_a_topic_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="Topic"):
        provider().verify(signed(b'{"id":1}', topic=""))


def test_an_authentic_body_that_is_not_json_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        provider().verify(signed(b"id=1"))


def _mac(body: bytes) -> bytes:
    return hmac.new(SECRET.encode(), body, hashlib.sha256).digest()


@pytest.mark.parametrize(
    "header",
    [
        _mac(b'{"id":1}').hex(),
        base64.b64encode(_mac(b'{"id":1}')).decode().rstrip("="),
        " " + base64.b64encode(_mac(b'{"id":1}')).decode(),
        "sha256=" + base64.b64encode(_mac(b'{"id":1}')).decode(),
        base64.b64encode(_mac(b'{"id":1}')).decode()[:-2] + "\u00e9=",
        "!!!not base64!!!",
    ],
    ids=["hex", "unpadded", "padded-with-space", "prefixed", "non-ascii", "garbage"],
)
def test_rejects_any_encoding_but_padded_standard_base64(header: str) -> None:
    request = signed(b'{"id":1}', **{"x-shopify-hmac-sha256": header})
    with pytest.raises(VerificationError):
        provider().verify(request)


def test_headers_are_not_signed_so_the_topic_cannot_turn_an_order_into_a_cancellation() -> None:
    # A captured orders/paid body replayed as orders/cancelled still verifies, but the body
    # has no cancelled_at, so it moves nothing.
    assert payment_events("orders-paid", "orders/cancelled") == []
    assert payment_events("orders-create", "orders/paid") == []


def test_an_order_body_replayed_as_a_refund_is_refused_as_unusable() -> None:
    with pytest.raises(PayloadError, match="order_id"):
        payment_events("orders-paid", "refunds/create")


# --- payment events -----------------------------------------------------------------------


def test_orders_paid_is_a_success_of_the_total_price() -> None:
    [paid] = payment_events("orders-paid", "orders/paid")
    assert (paid.kind, paid.payment_id) == (K.SUCCEEDED, ORDER_ID)
    assert (paid.amount, paid.currency) == (40300, "USD")


def test_an_authorized_order_in_yen_keeps_its_whole_amount() -> None:
    [created] = payment_events("orders-create", "orders/create")
    assert (created.kind, created.payment_id) == (K.AUTHORIZED, "450789469")
    assert (created.amount, created.currency) == (12500, "JPY")


def test_orders_cancelled_is_a_cancellation() -> None:
    [cancelled] = payment_events("orders-cancelled", "orders/cancelled")
    assert (cancelled.kind, cancelled.amount) == (K.CANCELED, 12500)


def test_a_refund_sums_its_successful_refund_transactions() -> None:
    [refund] = payment_events("refunds-create", "refunds/create")
    assert (refund.kind, refund.payment_id, refund.refund_id) == (K.REFUNDED, ORDER_ID, "929361463")
    assert (refund.amount, refund.currency) == (19900, "USD")  # 150.00 + 49.00; failure ignored
    assert refund.occurred_at == 1641399249.0


def test_a_refund_that_returned_no_money_feeds_nothing() -> None:
    assert payment_events("refunds-create-restock-only.json", "refunds/create") == []


def test_paid_then_partly_refunded_order_is_partially_refunded() -> None:
    events = payment_events("orders-paid", "orders/paid") + payment_events(
        "refunds-create", "refunds/create"
    )
    record = ledger.derive("shop", ORDER_ID, events)
    assert (record.status, record.amount_refunded) == (PaymentStatus.PARTIALLY_REFUNDED, 19900)


def test_a_dispute_opens_and_a_lost_update_closes_it() -> None:
    [opened] = payment_events("disputes-create", "disputes/create")
    [lost] = payment_events("disputes-update", "disputes/update")
    assert (opened.kind, lost.kind) == (K.DISPUTE_OPENED, K.DISPUTE_LOST)
    assert opened.dispute_id == lost.dispute_id == "285332461"
    assert (opened.amount, opened.currency) == (40300, "USD")
    paid = payment_events("orders-paid", "orders/paid")
    assert (
        ledger.derive("shop", ORDER_ID, [*paid, opened, lost]).status is PaymentStatus.DISPUTE_LOST
    )


def test_other_topics_feed_nothing() -> None:
    assert payment_events("orders-paid", "products/update") == []


def test_refund_transactions_in_two_currencies_are_a_payload_error() -> None:
    body = json.loads(load_sample("shopify", "refunds-create"))
    body["transactions"][1]["currency"] = "EUR"
    p = provider()
    [verified] = p.verify(signed(json.dumps(body).encode(), "refunds/create"))
    with pytest.raises(PayloadError, match="currency"):
        p.payment_events(stored(p, verified))


# --- agreement with a bare reference (no Shopify SDK is installed) ------------------------


def reference_accepts(body: bytes, header: str | None, secrets: list[str]) -> bool:
    """Shopify's documented check written out: base64(HMAC-SHA256(secret, body)) == header."""
    if header is None:
        return False
    return any(
        hmac.compare_digest(
            base64.b64encode(hmac.new(s.encode(), body, hashlib.sha256).digest()),
            header.encode(),
        )
        for s in secrets
    )


def payhook_accepts(body: bytes, header: str | None, secrets: list[str]) -> bool:
    headers = {"x-shopify-topic": "orders/paid", "x-shopify-webhook-id": "w1"}
    if header is not None:
        headers["x-shopify-hmac-sha256"] = header
    config = ProviderConfig("shop", "shopify", tuple(secrets))
    try:
        ShopifyProvider(config, FakeClock()).verify(WebhookRequest(body, headers))
    except VerificationError:
        return False
    return True


json_bodies = st.dictionaries(
    st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=12)), max_size=4
).map(lambda d: json.dumps(d, ensure_ascii=False).encode())
secret_text = st.text(min_size=1, max_size=24)
header_forms = st.sampled_from(
    ["exact", "unpadded", "urlsafe", "hex", "space", "truncated", "non-ascii", "empty",
     "absent", "random"]
)  # fmt: skip


def header_for(mac: bytes, form: str, noise: str) -> str | None:
    standard = base64.b64encode(mac).decode()
    return {
        "exact": standard,
        "unpadded": standard.rstrip("="),
        "urlsafe": base64.urlsafe_b64encode(mac).decode(),
        "hex": mac.hex(),
        "space": standard + " ",
        "truncated": standard[:-2],
        "non-ascii": standard[:-2] + "\u00e9=",
        "empty": "",
        "absent": None,
        "random": noise,
    }[form]


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(secret_text, min_size=1, max_size=3),
    foreign_secret=secret_text,
    use_foreign=st.booleans(),
    body=json_bodies,
    tamper_body=st.booleans(),
    form=header_forms,
    noise=st.text(max_size=48),
)
def test_agrees_with_the_reference_on_valid_tampered_and_malformed_requests(
    secrets: list[str],
    foreign_secret: str,
    use_foreign: bool,
    body: bytes,
    tamper_body: bool,
    form: str,
    noise: str,
) -> None:
    secret = foreign_secret if use_foreign else secrets[-1]
    header = header_for(hmac.new(secret.encode(), body, hashlib.sha256).digest(), form, noise)
    if tamper_body:
        body = body[:-1] + b" }"
    ours = payhook_accepts(body, header, secrets)
    event("accepted" if ours else "rejected")
    assert ours == reference_accepts(body, header, secrets)
