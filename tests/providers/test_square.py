"""Square: base64 HMAC-SHA256 over notification URL + body, checked against the official SDK.

What every provider keeps (samples, tampering, a missing signature, rotation) is in
test_contract.py; here: the published vectors, the URL, the exact comparison, the empty body,
the mapping, and agreement with the SDK."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import event as label
from hypothesis import given, settings
from hypothesis import strategies as st
from square.utils.webhooks_helper import verify_signature

from payhook.core.ledger import PaymentStatus, derive
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.hmac import Signed
from payhook.providers.square import SquareProvider
from tests.conftest import FakeClock, load_sample

KEY = "test-signature-key-1"
URL = "https://payhook.example.com/webhook/square"

# Published vector: square-python-sdk tests/integration/test_webhooks_helper.py.
VECTOR_BODY = (
    b'{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification",'
    b'"event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f",'
    b'"created_at":"2022-07-13T20:30:59.037339943Z",'
    b'"data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}'
)
VECTOR_SIGNATURE = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
VECTOR_KEY = "Ibxx_5AKakO-3qeNVR61Dw"
VECTOR_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"


def make(*secrets: str, url: str = URL) -> SquareProvider:
    config = ProviderConfig(
        "square", "square", secrets or (KEY,), options={"notification_url": url}
    )
    return SquareProvider(config, FakeClock())


def reference_signature(key: str, url: str, body: bytes) -> str:
    """Square's documented scheme, written out independently of the provider module."""
    return base64.b64encode(
        hmac.new(key.encode(), url.encode() + body, hashlib.sha256).digest()
    ).decode()


def request(body: bytes, signature: str | None) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-square-hmacsha256-signature"] = signature
    return WebhookRequest(body, headers)


def signed(body: bytes, key: str = KEY, url: str = URL) -> WebhookRequest:
    return request(body, reference_signature(key, url, body))


def stored(provider: SquareProvider, event: VerifiedEvent) -> StoredWebhook:
    return StoredWebhook(
        webhook_id=f"wh_{event.event_id}",
        provider=provider.name,
        provider_type=provider.provider_type,
        event_id=event.event_id,
        event_type=event.event_type,
        payload=event.payload,
        received_at=1_700_000_000.0,
        occurred_at=event.occurred_at,
    )


# known answers ----------------------------------------------------------------------------


def test_accepts_published_sdk_vector() -> None:
    provider = make(VECTOR_KEY, url=VECTOR_URL)
    [event] = provider.verify(request(VECTOR_BODY, VECTOR_SIGNATURE))
    assert (event.event_id, event.event_type) == (
        "ac3ac95b-f97d-458c-a6e6-18981597e05f",
        "webhooks.test_notification",
    )
    assert event.occurred_at == pytest.approx(1657744259.037339)
    assert event.payload == VECTOR_BODY


def test_accepts_published_vector_with_html_characters_in_body() -> None:
    # SDK test_signature_validation_escaped_pass: the body is signed as sent, unescaped.
    provider = make("signature-key", url="https://webhook.site/webhooks")
    body = b'{"data":{"type":"webhooks","id":">id<"}}'
    delivery = request(body, "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U=")
    assert provider.engine.verify(delivery) == Signed()
    with pytest.raises(PayloadError, match="event_id"):  # authentic, but no event
        provider.verify(delivery)


# failure modes ----------------------------------------------------------------------------


def test_rejects_vector_under_another_notification_url() -> None:
    provider = make(VECTOR_KEY, url=VECTOR_URL + "/")
    with pytest.raises(VerificationError, match="signature matches"):
        provider.verify(request(VECTOR_BODY, VECTOR_SIGNATURE))


def test_rejects_reformatted_body() -> None:
    reformatted = json.dumps(json.loads(VECTOR_BODY), indent=2).encode()
    with pytest.raises(VerificationError):
        make(VECTOR_KEY, url=VECTOR_URL).verify(request(reformatted, VECTOR_SIGNATURE))


def test_rejects_empty_body_even_when_signed() -> None:
    with pytest.raises(VerificationError, match="empty body"):
        make().verify(signed(b""))


@pytest.mark.parametrize(
    "variant",
    [
        lambda s: s.rstrip("="),
        lambda s: f" {s}",
        lambda s: s + "\n",
        lambda s: s.replace("+", "-").replace("/", "_"),
        lambda s: "sha256=" + s,
        lambda s: s[:-2] + "\u00e9=",
        lambda s: s.lower(),
    ],
    ids=["unpadded", "leading space", "newline", "urlsafe", "prefixed", "non-ascii", "lowercase"],
)
def test_rejects_signature_not_exactly_as_sent(variant: Callable[[str], str]) -> None:
    # Compared as text, as the SDK compares it: only the exact base64 string is accepted.
    provider = make(VECTOR_KEY, url=VECTOR_URL)
    mangled = variant(VECTOR_SIGNATURE)
    with pytest.raises(VerificationError):
        provider.verify(request(VECTOR_BODY, mangled))


def test_authentic_body_that_is_not_json_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        make().verify(signed(b"not json"))


def test_authentic_body_without_event_id_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="event_id"):
        make().verify(signed(b'{"type":"payment.updated","data":{}}'))


@pytest.mark.parametrize(
    "options",
    [{}, {"notification_url": ""}, {"notification_url": 42}, {"notification_url": "/\ud800"}],
    ids=["absent", "empty", "not text", "lone surrogate"],
)
def test_requires_the_notification_url(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="notification_url"):
        SquareProvider(ProviderConfig("square", "square", (KEY,), options=options))


# payment events ---------------------------------------------------------------------------

PAY = "KkAkhdMsgzn59SM8A7PMHDaHt4IZY"
REFUND = PAY + "_Rr5ZqxP3cTAgbYxFzvw6Dp5dhS2Q8ffxV4C6Uv3TQ1Ur5"
DISPUTE = "XDgyFu7yo1E2S5lQGGpYn"


def sample(event_type: str, *, values: dict[str, str] | None = None, **changes: Any) -> bytes:
    """A recorded sample; ``changes`` set fields of its object (``status``, ``state``, ...) or,
    as ``type``, the event type: the other events of the same payment, refund or dispute."""
    body = load_sample("square", event_type, **(values or {}))
    if not changes:
        return body
    event = json.loads(body)
    event["type"] = changes.pop("type", event["type"])
    [obj] = event["data"]["object"].values()
    obj.update(changes)
    return json.dumps(event, indent=2).encode()


# Another payment that failed, and another canceled (payment.updated, as the sample).
FAILED = {"values": {"payment": "bP9mAsEMYPUGjjGNaNO5ZDVyLhSZY"}, "status": "FAILED"}
FAILED["total_money"] = {"amount": 2500, "currency": "USD"}
CANCELED = {"values": {"payment": "Zk8s1mQw2Rt5YvB3nP7cLx9HdJ4ZY"}, "status": "CANCELED"}


@pytest.mark.parametrize(
    ("body", "kind", "payment_id", "amount", "refund_id", "dispute_id"),
    [
        (sample("payment.created"), K.AUTHORIZED, PAY, 1100, None, None),
        (sample("payment.updated"), K.SUCCEEDED, PAY, 1100, None, None),
        (
            sample("payment.updated", **FAILED),
            K.FAILED,
            "bP9mAsEMYPUGjjGNaNO5ZDVyLhSZY",
            2500,
            None,
            None,
        ),
        (
            sample("payment.updated", **CANCELED),
            K.CANCELED,
            "Zk8s1mQw2Rt5YvB3nP7cLx9HdJ4ZY",
            1100,
            None,
            None,
        ),
        (sample("refund.updated"), K.REFUNDED, PAY, 500, REFUND, None),
        (sample("dispute.created"), K.DISPUTE_OPENED, PAY, 1100, None, DISPUTE),
        (sample("dispute.state.updated"), K.DISPUTE_WON, PAY, 1100, None, DISPUTE),
        (sample("dispute.state.updated", state="LOST"), K.DISPUTE_LOST, PAY, 1100, None, DISPUTE),
    ],
    ids=["approved", "completed", "failed", "canceled", "refunded", "disputed", "won", "lost"],
)
def test_maps_event_to_payment_event(
    body: bytes,
    kind: K,
    payment_id: str,
    amount: int,
    refund_id: str | None,
    dispute_id: str | None,
) -> None:
    provider = make()
    [event] = provider.verify(signed(body))
    [payment] = provider.payment_events(stored(provider, event))
    assert (payment.kind, payment.payment_id, payment.amount, payment.currency) == (
        kind,
        payment_id,
        amount,
        "USD",
    )
    assert (payment.refund_id, payment.dispute_id) == (refund_id, dispute_id)
    assert payment.occurred_at == event.occurred_at


@pytest.mark.parametrize(
    "body",
    [
        sample("refund.updated", type="refund.created", status="PENDING"),
        sample("dispute.state.updated", state="PROCESSING"),
    ],
    ids=["pending refund", "dispute in progress"],
)
def test_event_without_ledger_effect_maps_to_nothing(body: bytes) -> None:
    provider = make()
    [event] = provider.verify(signed(body))
    assert provider.payment_events(stored(provider, event)) == []


def test_payment_amount_is_the_total_including_tip() -> None:
    provider = make()
    [event] = provider.verify(signed(sample("payment.updated")))
    payment = json.loads(event.payload)["data"]["object"]["payment"]
    assert (payment["amount_money"]["amount"], payment["tip_money"]["amount"]) == (1000, 100)
    assert provider.payment_events(stored(provider, event))[0].amount == 1100


def test_approve_complete_refund_builds_a_partially_refunded_payment() -> None:
    provider = make()
    payment_events = []
    for event_type in ("refund.updated", "payment.updated", "payment.created"):
        [event] = provider.verify(signed(sample(event_type)))
        payment_events += provider.payment_events(stored(provider, event))
    record = derive("square", PAY, payment_events)
    assert record.status is PaymentStatus.PARTIALLY_REFUNDED
    assert (record.amount_captured, record.amount_refunded) == (1100, 500)


def test_samples_sign_the_notification_url_then_the_body() -> None:
    delivery = make().sample_request()
    signature = delivery.headers["x-square-hmacsha256-signature"]
    assert signature == reference_signature(KEY, URL, delivery.body)
    assert _sdk_accepts(delivery.body, signature, KEY, URL)


# agreement with the official SDK ----------------------------------------------------------


def _variants(signature: str) -> list[str]:
    """A valid signature, slightly changed: lenient parsing would accept these, the SDK not."""
    return [
        f" {signature}",
        f"{signature}\n",
        f"{signature} ",
        signature.rstrip("="),
        signature + "=",
        signature.upper(),
        signature.swapcase(),
        signature[:-1],
        signature.replace("+", "-").replace("/", "_"),
    ]


def _sdk_accepts(body: bytes, header: str, key: str, url: str) -> bool:
    return verify_signature(
        request_body=body.decode(), signature_header=header, signature_key=key, notification_url=url
    )


def _payhook_accepts(body: bytes, header: str, key: str, url: str) -> bool:
    try:
        make(key, url=url).verify(request(body, header))
    except VerificationError:
        return False
    except PayloadError:  # authentic but not a usable event: the signature said yes
        return True
    return True


@pytest.mark.sdk
@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    text=st.text(max_size=200),
    key=st.text(min_size=1, max_size=40),
    url=st.text(min_size=1, max_size=60),
    mode=st.sampled_from(
        ["valid", "tampered body", "other url", "other key", "garbage", "near miss"]
    ),
)
def test_agrees_with_square_sdk(
    data: st.DataObject, text: str, key: str, url: str, mode: str
) -> None:
    body = text.encode()
    signature = reference_signature(key, url, body)
    if mode == "tampered body":
        body = data.draw(st.text(max_size=200)).encode()
    elif mode == "other url":
        url = data.draw(st.text(min_size=1, max_size=60))
    elif mode == "other key":
        key = data.draw(st.text(min_size=1, max_size=40))
    elif mode == "garbage":
        signature = data.draw(st.text(max_size=60))
    elif mode == "near miss":
        signature = data.draw(st.sampled_from(_variants(signature)))
    expected = _sdk_accepts(body, signature, key, url)
    label(f"sdk accepts: {expected}")
    assert _payhook_accepts(body, signature, key, url) is expected
