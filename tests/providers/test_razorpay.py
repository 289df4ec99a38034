"""Razorpay: hex HMAC-SHA256 of the body, event id from a header the signature does not cover.

What every provider keeps (samples, tampering, a missing signature, rotation, unsigned headers
never changing identity) is in test_contract.py; here: the published vector, the exact
comparison, the event id header, the mapping, and agreement with the SDK."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import razorpay
from hypothesis import event as label
from hypothesis import given, settings
from hypothesis import strategies as st
from razorpay.errors import SignatureVerificationError

from payhook.core.ledger import PaymentStatus, derive
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.razorpay import RazorpayProvider
from tests.conftest import FakeClock, load_event, load_sample

SECRET = "rzp_webhook_secret_1"
OTHER_SECRET = "rzp_webhook_secret_2"
EVENT_ID = "NMp6Bn2GqkTeWa"

# Published vector: razorpay-python tests/test_client_utility.py (secret "key_secret",
# body tests/mocks/fake_payment_authorized_webhook.json, byte for byte, final newline included).
VECTOR_SECRET = "key_secret"
VECTOR_SIGNATURE = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9"


def make(*secrets: str) -> RazorpayProvider:
    config = ProviderConfig("razorpay", "razorpay", secrets or (SECRET,))
    return RazorpayProvider(config, FakeClock())


def reference_signature(secret: str, body: bytes) -> str:
    """Razorpay's documented scheme, written out independently of the provider module."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request(body: bytes, signature: str | None, event_id: str | None = EVENT_ID) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-razorpay-signature"] = signature
    if event_id is not None:
        headers["x-razorpay-event-id"] = event_id
    return WebhookRequest(body, headers)


def signed(
    event_type: str, secret: str = SECRET, event_id: str | None = EVENT_ID
) -> WebhookRequest:
    """A recorded sample, or the SDK's test body, signed by the reference."""
    if event_type == "sdk":
        body = load_event("razorpay", "sdk_payment_authorized.json")
    elif event_type == "refund.created":  # the refund before it is processed
        event = json.loads(load_sample("razorpay", "refund.processed"))
        event["event"] = "refund.created"
        event["payload"]["refund"]["entity"]["status"] = "pending"
        body = json.dumps(event, indent=2).encode()
    else:
        body = load_sample("razorpay", event_type)
    return request(body, reference_signature(secret, body), event_id)


def stored(provider: RazorpayProvider, event: VerifiedEvent) -> StoredWebhook:
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


# known answer -----------------------------------------------------------------------------


def test_accepts_published_sdk_vector() -> None:
    body = load_event("razorpay", "sdk_payment_authorized.json")
    [event] = make(VECTOR_SECRET).verify(request(body, VECTOR_SIGNATURE))
    assert (event.event_id, event.event_type, event.occurred_at) == (
        EVENT_ID,
        "payment.authorized",
        1400826760.0,
    )


def test_vector_covers_the_final_newline() -> None:
    body = load_event("razorpay", "sdk_payment_authorized.json")
    with pytest.raises(VerificationError):
        make(VECTOR_SECRET).verify(request(body.rstrip(b"\n"), VECTOR_SIGNATURE))


# failure modes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        VECTOR_SIGNATURE.upper(),
        VECTOR_SIGNATURE[:-2],
        VECTOR_SIGNATURE + "\n",
        "sha256=" + VECTOR_SIGNATURE,
        VECTOR_SIGNATURE[:-1] + "\u00e9",
    ],
    ids=["upper case", "truncated", "newline", "prefixed", "non-ascii"],
)
def test_rejects_signature_not_exactly_the_lower_case_hex_digest(signature: str) -> None:
    body = load_event("razorpay", "sdk_payment_authorized.json")
    with pytest.raises(VerificationError):
        make(VECTOR_SECRET).verify(request(body, signature))


@pytest.mark.parametrize(
    "event_id",
    [None, "", "has space", "x" * 129, "caf\u00e9", "evt_1\n"],
    ids=["absent", "empty", "space", "too long", "non-ascii", "trailing newline"],
)
def test_authentic_body_without_usable_event_id_is_a_payload_error(event_id: str | None) -> None:
    with pytest.raises(PayloadError, match="x-razorpay-event-id"):
        make().verify(signed("payment.captured", event_id=event_id))


def test_signature_is_checked_before_the_event_id() -> None:
    with pytest.raises(VerificationError):
        make().verify(signed("payment.captured", secret=OTHER_SECRET, event_id=None))


def test_authentic_body_that_is_not_json_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        make().verify(request(b"not json", reference_signature(SECRET, b"not json")))


def test_replay_under_a_fresh_event_id_moves_no_money() -> None:
    # The id header is not signed: a replay can carry a new id and be stored again, but the
    # ledger counts each refund once by its refund id.
    provider = make()
    payment_events = []
    for event_type, event_id in [
        ("payment.captured", "NMp6Bn2GqkTeWa"),
        ("refund.processed", "NMp7Cq3HrlUfXb"),
        ("refund.processed", "Replayed000001"),
    ]:
        [event] = provider.verify(signed(event_type, event_id=event_id))
        payment_events += provider.payment_events(stored(provider, event))
    assert len({e.key for e in payment_events}) == 3
    record = derive("razorpay", "pay_DESlfW9H8K9uqM", payment_events)
    assert (record.amount_captured, record.amount_refunded) == (100, 40)


# payment events ---------------------------------------------------------------------------

PAY = "pay_DESlfW9H8K9uqM"
DISPUTE = "disp_AHfqOvkldwsbqt"


@pytest.mark.parametrize(
    ("event_type", "kind", "payment_id", "amount", "refund_id", "dispute_id"),
    [
        ("payment.authorized", K.AUTHORIZED, PAY, 100, None, None),
        ("payment.captured", K.SUCCEEDED, PAY, 100, None, None),
        ("payment.failed", K.FAILED, "pay_DEXF3hLbtl5YbV", 2500, None, None),
        ("refund.processed", K.REFUNDED, PAY, 40, "rfnd_DGX7wQmNzzxiQx", None),
        ("payment.dispute.created", K.DISPUTE_OPENED, PAY, 100, None, DISPUTE),
        ("payment.dispute.won", K.DISPUTE_WON, PAY, 100, None, DISPUTE),
        ("payment.dispute.lost", K.DISPUTE_LOST, PAY, 100, None, DISPUTE),
        ("sdk", K.AUTHORIZED, "pay_6koWN7bvxujzxM", 1000000, None, None),
    ],
)
def test_maps_event_to_payment_event(
    event_type: str,
    kind: K,
    payment_id: str,
    amount: int,
    refund_id: str | None,
    dispute_id: str | None,
) -> None:
    provider = make()
    [event] = provider.verify(signed(event_type))
    [payment] = provider.payment_events(stored(provider, event))
    assert (payment.kind, payment.payment_id, payment.amount, payment.currency) == (
        kind,
        payment_id,
        amount,
        "INR",
    )
    assert (payment.refund_id, payment.dispute_id) == (refund_id, dispute_id)
    assert payment.occurred_at == event.occurred_at


def test_refund_carries_cumulative_refund_and_captured_amount() -> None:
    provider = make()
    [event] = provider.verify(signed("refund.processed"))
    [payment] = provider.payment_events(stored(provider, event))
    assert (payment.refunded_total, payment.captured_hint) == (40, 100)


def test_refund_not_yet_processed_maps_to_nothing() -> None:
    provider = make()
    [event] = provider.verify(signed("refund.created"))
    assert provider.payment_events(stored(provider, event)) == []


def test_authorize_capture_refund_builds_a_partially_refunded_payment() -> None:
    provider = make()
    payment_events = []
    for event_type in ("refund.processed", "payment.captured", "payment.authorized"):
        [event] = provider.verify(signed(event_type))
        payment_events += provider.payment_events(stored(provider, event))
    record = derive("razorpay", PAY, payment_events)
    assert record.status is PaymentStatus.PARTIALLY_REFUNDED
    assert (record.amount_captured, record.amount_refunded) == (100, 40)


def test_samples_carry_a_fresh_event_id_header_outside_the_signature() -> None:
    provider = make()
    first, second = provider.sample_request(), provider.sample_request()
    assert first.headers["x-razorpay-signature"] == reference_signature(SECRET, first.body)
    ids = {r.headers["x-razorpay-event-id"] for r in (first, second)}
    assert len(ids) == 2
    assert [e.event_id for e in provider.verify(first)] == [first.headers["x-razorpay-event-id"]]


# agreement with the official SDK ----------------------------------------------------------

_utility = razorpay.Client(auth=("key", "secret")).utility


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


def _sdk_accepts(body: bytes, signature: str, secret: str) -> bool:
    try:
        return bool(_utility.verify_webhook_signature(body.decode(), signature, secret))
    except SignatureVerificationError:
        return False
    except TypeError:  # hmac.compare_digest refuses non-ASCII text: the SDK's other "no"
        return False


def _payhook_accepts(body: bytes, signature: str, secret: str) -> bool:
    try:
        make(secret).verify(request(body, signature))
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
    secret=st.text(min_size=1, max_size=40),
    mode=st.sampled_from(["valid", "tampered body", "other secret", "near miss", "garbage"]),
)
def test_agrees_with_razorpay_sdk(data: st.DataObject, text: str, secret: str, mode: str) -> None:
    body = text.encode()
    signature = reference_signature(secret, body)
    if mode == "tampered body":
        body = data.draw(st.text(max_size=200)).encode()
    elif mode == "other secret":
        signature = reference_signature(data.draw(st.text(min_size=1, max_size=40)), body)
    elif mode == "near miss":
        signature = data.draw(st.sampled_from(_variants(signature)))
    elif mode == "garbage":
        signature = data.draw(st.text(max_size=70))
    expected = _sdk_accepts(body, signature, secret)
    label(f"sdk accepts: {expected}")
    assert _payhook_accepts(body, signature, secret) is expected
