"""Checkout.com: hex HMAC-SHA256 of the body in Cko-Signature, optional static Authorization.

What every provider keeps (samples, tampering, a missing signature, rotation) is in
test_contract.py; here: the vector, the exact comparison, the Authorization header, the
mapping, and agreement with a bare reference (Checkout.com has no SDK helper)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import event as label
from hypothesis import given, settings
from hypothesis import strategies as st

from payhook.core.ledger import PaymentStatus, derive
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.checkout import CheckoutProvider
from tests.conftest import FakeClock, load_event, load_sample

KEY = "sk_sbox_webhook_7f3c2a9e"
AUTHORIZATION = "Bearer whk_3Yb8Kp0Qz"

# No SDK helper exists: this vector was computed once with OpenSSL 3.0
# (`openssl dgst -sha256 -hmac sk_sbox_webhook_7f3c2a9e signature_vector_body.json`).
VECTOR_BODY = load_event("checkout", "signature_vector_body.json")
VECTOR_SIGNATURE = "50124436e2dc543b7c3aa460f392324580550ce6671c5eee8c3ad5aeb007491b"


def make(*secrets: str, authorization: str | None = None) -> CheckoutProvider:
    options = {"authorization": authorization} if authorization is not None else {}
    config = ProviderConfig("checkout", "checkout", secrets or (KEY,), options=options)
    return CheckoutProvider(config, FakeClock())


def reference_signature(key: str, body: bytes) -> str:
    """Checkout.com's documented scheme, written out independently of the provider module."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def request(body: bytes, signature: str | None, authorization: str | None = None) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["cko-signature"] = signature
    if authorization is not None:
        headers["authorization"] = authorization
    return WebhookRequest(body, headers)


def signed(event_type: str, key: str = KEY, authorization: str | None = None) -> WebhookRequest:
    """A recorded sample signed by the reference, or the Flow-era refund (not a sample)."""
    if event_type == "payment_refunded_flow":
        body = load_event("checkout", "payment_refunded_flow.json")
    else:
        body = load_sample("checkout", event_type)
    return request(body, reference_signature(key, body), authorization)


def stored(provider: CheckoutProvider, event: VerifiedEvent) -> StoredWebhook:
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


def test_accepts_fixed_vector() -> None:
    body = VECTOR_BODY
    [event] = make().verify(request(body, VECTOR_SIGNATURE))
    assert (event.event_id, event.event_type) == (
        "evt_6aznipgxbuaure3qen5qbzyswy",
        "payment_captured",
    )
    assert event.occurred_at == 1709629200.0  # created_on 2024-03-05T09:00:00Z
    assert event.payload == body


# failure modes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        VECTOR_SIGNATURE.upper(),
        VECTOR_SIGNATURE[:-1],
        f" {VECTOR_SIGNATURE}",
        "sha256=" + VECTOR_SIGNATURE,
        VECTOR_SIGNATURE[:-1] + "\u00e9",
        "not hex at all",
    ],
    ids=["upper case", "truncated", "leading space", "prefixed", "non-ascii", "garbage"],
)
def test_rejects_signature_not_exactly_the_lower_case_hex_digest(signature: str) -> None:
    with pytest.raises(VerificationError):
        make().verify(request(VECTOR_BODY, signature))


def test_accepts_configured_authorization_header() -> None:
    provider = make(authorization=AUTHORIZATION)
    assert len(provider.verify(signed("payment_captured", authorization=AUTHORIZATION))) == 1


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer whk_3Yb8Kp0Qy", AUTHORIZATION + " ", "Bearer whk_3Yb8Kp0Q\ud800"],
    ids=["absent", "empty", "wrong", "trailing space", "lone surrogate"],
)
def test_rejects_wrong_or_missing_authorization_when_configured(authorization: str | None) -> None:
    provider = make(authorization=AUTHORIZATION)
    with pytest.raises(VerificationError, match="Authorization"):
        provider.verify(signed("payment_captured", authorization=authorization))


def test_correct_authorization_does_not_replace_the_signature() -> None:
    provider = make(authorization=AUTHORIZATION)
    with pytest.raises(VerificationError, match="Cko-Signature"):
        provider.verify(request(VECTOR_BODY, None, AUTHORIZATION))


def test_a_wrong_authorization_is_refused_before_the_body_is_read() -> None:
    # A signed body that is no event would be a PayloadError (400): the Authorization header
    # is part of verification, so a wrong one is a 401 whatever the body.
    body = b"not json"
    provider = make(authorization=AUTHORIZATION)
    with pytest.raises(VerificationError, match="Authorization"):
        provider.verify(request(body, reference_signature(KEY, body), "Bearer wrong"))
    with pytest.raises(PayloadError):
        provider.verify(request(body, reference_signature(KEY, body), AUTHORIZATION))


@pytest.mark.parametrize("value", ["", 42, ["a"]])
def test_rejects_authorization_option_that_is_not_a_string(value: object) -> None:
    config = ProviderConfig("checkout", "checkout", (KEY,), options={"authorization": value})
    with pytest.raises(ConfigError, match="authorization"):
        CheckoutProvider(config)


def test_authentic_body_without_id_is_a_payload_error() -> None:
    body = b'{"type":"payment_captured","data":{}}'
    with pytest.raises(PayloadError, match="id"):
        make().verify(request(body, reference_signature(KEY, body)))


def test_flow_event_takes_its_time_from_timestamp() -> None:
    [event] = make().verify(signed("payment_refunded_flow"))
    assert event.occurred_at == pytest.approx(1709889152.357)


# payment events ---------------------------------------------------------------------------

PAY = "pay_waji5li3mqtetnaor77xmow4bq"
DISPUTE = "dsp_9rjdlsd4epepfjyyf9vl"


@pytest.mark.parametrize(
    ("event_type", "kind", "payment_id", "amount", "currency", "refund_id", "dispute_id"),
    [
        ("payment_approved", K.AUTHORIZED, PAY, 10000, "EUR", None, None),
        ("payment_captured", K.SUCCEEDED, PAY, 10000, "EUR", None, None),
        (
            "payment_declined",
            K.FAILED,
            "pay_dk4ldlvnrgyu7lmn27bkzajjz4",
            6540,
            "USD",
            None,
            None,
        ),
        (
            "payment_refunded",
            K.REFUNDED,
            PAY,
            4000,
            "EUR",
            "act_2f7jjdbgk7huzab5nxnkrihrzu",
            None,
        ),
        (
            "payment_voided",
            K.CANCELED,
            "pay_jlfj2raf2v4ubovqgwbw2nd7za",
            2500,
            "GBP",
            None,
            None,
        ),
        ("dispute_received", K.DISPUTE_OPENED, PAY, 10000, "EUR", None, DISPUTE),
        ("dispute_won", K.DISPUTE_WON, PAY, None, None, None, DISPUTE),
        ("dispute_lost", K.DISPUTE_LOST, PAY, 10000, "EUR", None, DISPUTE),
    ],
)
def test_maps_event_to_payment_event(
    event_type: str,
    kind: K,
    payment_id: str,
    amount: int | None,
    currency: str | None,
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
        currency,
    )
    assert (payment.refund_id, payment.dispute_id) == (refund_id, dispute_id)
    assert payment.occurred_at == event.occurred_at


def test_flow_refund_carries_the_balances() -> None:
    provider = make()
    [event] = provider.verify(signed("payment_refunded_flow"))
    [payment] = provider.payment_events(stored(provider, event))
    assert (payment.amount, payment.refunded_total, payment.captured_hint) == (3000, 7000, 10000)
    assert payment.refund_id == "act_uqlj3642dyyuroivzdwfg2fysq"


def test_event_type_without_ledger_effect_maps_to_nothing() -> None:
    provider = make()
    body = b'{"id":"evt_x","type":"payment_capture_pending","data":{"id":"pay_x","amount":1}}'
    [event] = provider.verify(request(body, reference_signature(KEY, body)))
    assert provider.payment_events(stored(provider, event)) == []


def test_refund_without_action_id_is_a_payload_error() -> None:
    provider = make()
    body = b'{"id":"evt_x","type":"payment_refunded","data":{"id":"pay_x","amount":1}}'
    [event] = provider.verify(request(body, reference_signature(KEY, body)))
    with pytest.raises(PayloadError, match="action_id"):
        provider.payment_events(stored(provider, event))


def test_approve_capture_refund_builds_a_partially_refunded_payment() -> None:
    provider = make()
    payment_events = []
    for event_type in ("payment_refunded", "payment_captured", "payment_approved"):
        [event] = provider.verify(signed(event_type))
        payment_events += provider.payment_events(stored(provider, event))
    record = derive("checkout", PAY, payment_events)
    assert record.status is PaymentStatus.PARTIALLY_REFUNDED
    assert (record.amount_captured, record.amount_refunded) == (10000, 4000)


def test_samples_carry_the_configured_authorization() -> None:
    provider = make(KEY, authorization=AUTHORIZATION)
    sample = provider.sample_request()
    assert sample.headers["authorization"] == AUTHORIZATION
    assert sample.headers["cko-signature"] == reference_signature(KEY, sample.body)
    assert provider.verify(sample)
    assert "authorization" not in make(KEY).sample_request().headers


# agreement with a bare reference implementation (Checkout.com has no SDK helper) ----------


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


def _reference_accepts(
    body: bytes, signature: str, key: str, authorization: str | None, expected_auth: str | None
) -> bool:
    digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(digest, signature.encode()):
        return False
    if expected_auth is None:
        return True
    return authorization is not None and hmac.compare_digest(
        authorization.encode(), expected_auth.encode()
    )


def _payhook_accepts(provider: CheckoutProvider, request: WebhookRequest) -> bool:
    try:
        provider.verify(request)
    except VerificationError:
        return False
    except PayloadError:  # authentic but not a usable event: the signature said yes
        return True
    return True


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    body=st.binary(max_size=200),
    key=st.text(min_size=1, max_size=40),
    expected_auth=st.none() | st.text(min_size=1, max_size=20),
    mode=st.sampled_from(
        ["valid", "tampered body", "other key", "garbage", "near miss", "bad authorization"]
    ),
)
def test_agrees_with_reference_implementation(
    data: st.DataObject, body: bytes, key: str, expected_auth: str | None, mode: str
) -> None:
    signature = reference_signature(key, body)
    authorization = expected_auth
    if mode == "tampered body":
        body = data.draw(st.binary(max_size=200))
    elif mode == "other key":
        signature = reference_signature(data.draw(st.text(min_size=1, max_size=40)), body)
    elif mode == "garbage":
        signature = data.draw(st.text(max_size=70))
    elif mode == "near miss":
        signature = data.draw(st.sampled_from(_variants(signature)))
    elif mode == "bad authorization":
        authorization = data.draw(st.none() | st.text(max_size=20))
    expected = _reference_accepts(body, signature, key, authorization, expected_auth)
    label(f"reference accepts: {expected}")
    provider = make(key, authorization=expected_auth)
    assert _payhook_accepts(provider, request(body, signature, authorization)) is expected
