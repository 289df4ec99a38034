"""Mollie: signed next-gen webhooks, opt-in classic webhooks, mapping, agreement with the SDK.

What every provider keeps (a changed body, a missing header or a foreign secret refused,
rotation) is in the contract suite, tests/providers/test_contract.py. Deliveries here are signed
by the official SDK (``SignatureValidator.create_signature``), never by the engine under test.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from mollie.utils.webhooks import InvalidSignatureException, SignatureValidator

from payhook.core import ledger
from payhook.core.ledger import PaymentStatus
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, webhook_id_for
from payhook.core.payment import PaymentEvent
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.mollie import MollieProvider
from tests.conftest import FakeClock, load_event, load_sample

SECRET = "mollie_webhook_secret_Zt7Kq2"
OLD_SECRET = "mollie_webhook_secret_previous"
PAID = "tr_5B8cwPMGnU6qLbRvo7qEZo"
NOW = 1_700_000_003


def provider(*secrets: str, clock: FakeClock | None = None, **options: Any) -> MollieProvider:
    config = ProviderConfig("mollie", "mollie", secrets or (SECRET,), options=options)
    return MollieProvider(config, clock or FakeClock(NOW))


def sdk_signature(secret: str, body: bytes) -> str:
    return SignatureValidator.create_signature(body.decode(), secret)


def signed(body: bytes, secret: str = SECRET, prefix: str = "sha256=") -> WebhookRequest:
    header = prefix + sdk_signature(secret, body)
    return WebhookRequest(body, {"content-type": "application/json", "x-mollie-signature": header})


def classic(body: bytes = b"id=tr_d0b0E3EA3v") -> WebhookRequest:
    return WebhookRequest(body, {"content-type": "application/x-www-form-urlencoded"})


def stored(p: MollieProvider, event: VerifiedEvent) -> StoredWebhook:
    return StoredWebhook(
        webhook_id=webhook_id_for(p.name, event.event_id),
        provider=p.name,
        provider_type=p.provider_type,
        event_id=event.event_id,
        event_type=event.event_type,
        payload=event.payload,
        received_at=p.clock(),
        occurred_at=event.occurred_at,
        verified=event.verified,
    )


def simple(event_type: str) -> bytes:
    """A sample as a "simple" payload: the event without its embedded entity."""
    event = json.loads(load_sample("mollie", event_type))
    del event["_embedded"]
    return json.dumps(event, indent=2).encode()


def payment_events(event_type: str, body: bytes | None = None) -> list[PaymentEvent]:
    p = provider()
    [verified] = p.verify(signed(body or load_sample("mollie", event_type)))
    return p.payment_events(stored(p, verified))


# --- known answer -------------------------------------------------------------------------

KNOWN_BODY = (
    b'{"resource":"event","id":"event_GvJ8WHrp5isUdRub9CJyH","type":"payment.paid",'
    b'"entityId":"tr_5B8cwPMGnU6qLbRvo7qEZo","createdAt":"2024-03-20T09:28:37+00:00"}'
)
# Mollie publishes no vector; this one was computed with `openssl dgst -sha256 -hmac`.
KNOWN_SIGNATURE = "23d00be8dbb8dcef0a6b47f3abb560b549f1595f2c6bfd683e5ed51cb6508a42"


def test_known_vector_verifies_and_matches_the_sdk() -> None:
    assert SignatureValidator.create_signature(KNOWN_BODY.decode(), SECRET) == KNOWN_SIGNATURE
    ours = provider().engine.sign(KNOWN_BODY)
    assert ours["x-mollie-signature"] == f"sha256={KNOWN_SIGNATURE}"
    request = WebhookRequest(KNOWN_BODY, {"x-mollie-signature": f"sha256={KNOWN_SIGNATURE}"})
    [verified] = provider().verify(request)
    assert (verified.event_id, verified.event_type) == (
        "event_GvJ8WHrp5isUdRub9CJyH",
        "payment.paid",
    )
    assert verified.occurred_at == 1710926917.0
    assert verified.verified


# --- signed (next-gen) verification ---------------------------------------------------------


def test_accepts_a_bare_hex_signature_as_the_sdk_does() -> None:
    assert provider().verify(signed(KNOWN_BODY, prefix=""))


def test_rejects_a_missing_header_unless_classic_is_allowed() -> None:
    with pytest.raises(VerificationError, match="missing"):
        provider().verify(WebhookRequest(KNOWN_BODY, {}))
    with pytest.raises(VerificationError, match="classic"):
        provider(allow_classic=True).verify(WebhookRequest(KNOWN_BODY, {}))


@pytest.mark.parametrize(
    "header",
    [
        "sha256=",
        "sha256=" + KNOWN_SIGNATURE.upper(),
        "SHA256=" + KNOWN_SIGNATURE,
        "sha256=sha256=" + KNOWN_SIGNATURE,
        "sha1=" + KNOWN_SIGNATURE,
        "sha256=" + KNOWN_SIGNATURE[:-1],
        "sha256=" + KNOWN_SIGNATURE[:-1] + "\u00e9",
        "sha256=" + KNOWN_SIGNATURE + ", sha256=" + KNOWN_SIGNATURE,
    ],
)
def test_rejects_a_malformed_signature(header: str) -> None:
    with pytest.raises(VerificationError):
        provider().verify(WebhookRequest(KNOWN_BODY, {"x-mollie-signature": header}))


def test_a_signed_body_that_is_not_an_event_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="type"):
        provider().verify(signed(b'{"id":"event_1"}'))


def test_rejection_reasons_carry_neither_body_nor_secret() -> None:
    with pytest.raises(VerificationError) as info:
        provider().verify(signed(b'{"card":"4242424242424242"}', OLD_SECRET))
    assert "4242" not in str(info.value)
    assert SECRET not in str(info.value)


# --- classic webhooks -----------------------------------------------------------------------


def test_classic_webhooks_are_refused_by_default() -> None:
    with pytest.raises(VerificationError, match="missing"):
        provider().verify(classic())


def test_an_allowed_classic_webhook_is_stored_unverified() -> None:
    [verified] = provider(allow_classic=True).verify(
        classic(load_event("mollie", "classic.form").strip())
    )
    assert verified.verified is False
    assert verified.event_type == "classic.payment"
    assert verified.event_id == "tr_d0b0E3EA3v@1700000000"
    assert verified.payload == b"id=tr_d0b0E3EA3v"
    assert verified.occurred_at is None


def test_classic_posts_within_the_window_share_an_event_id_and_later_ones_do_not() -> None:
    clock = FakeClock(1_700_000_000)
    p = provider(clock=clock, allow_classic=True)
    [first] = p.verify(classic())
    clock.advance(4)
    [repeat] = p.verify(classic())
    clock.advance(1)
    [later] = p.verify(classic())
    assert first.event_id == repeat.event_id
    assert later.event_id != first.event_id


def test_the_classic_window_is_configurable() -> None:
    clock = FakeClock(1_700_000_040)  # a multiple of 60: the start of a window
    p = provider(clock=clock, allow_classic=True, classic_dedup_seconds=60)
    [first] = p.verify(classic())
    clock.advance(59)
    assert p.verify(classic())[0].event_id == first.event_id


def test_a_classic_webhook_has_no_ledger_effect() -> None:
    p = provider(allow_classic=True)
    [verified] = p.verify(classic())
    assert p.payment_events(stored(p, verified)) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"id=",
        b"id=tr_a&id=tr_b",
        b"id=tr_d0b0E3EA3v&status=paid",
        b"id=../../etc/passwd",
        b"id=tr_d0b0E3EA3v\n",
        b"id=tr_\xc3\xa9",
        KNOWN_BODY,
    ],
)
def test_an_unsigned_body_that_is_not_a_classic_webhook_is_refused(body: bytes) -> None:
    with pytest.raises(VerificationError, match="classic"):
        provider(allow_classic=True).verify(classic(body))


def _escaped(text: bytes) -> bytes:
    return "".join(f"%{b:02X}" for b in text).encode()


def test_an_unsigned_body_longer_than_any_classic_webhook_is_refused_unparsed() -> None:
    # The longest classic body: the longest id, every character percent-encoded.
    longest = _escaped(b"id") + b"=" + _escaped(b"abcde_" + b"A1" * 32)
    [verified] = provider(allow_classic=True).verify(classic(longest))
    assert verified.event_id.startswith("abcde_A1A1")
    for body in (longest + b"&", b"id=tr_d0b0E3EA3v" + b"&x=1" * 250_000):
        with pytest.raises(VerificationError, match="classic"):
            provider(allow_classic=True).verify(classic(body))


def test_a_bad_signature_is_never_downgraded_to_a_classic_webhook() -> None:
    request = WebhookRequest(b"id=tr_d0b0E3EA3v", {"x-mollie-signature": "sha256=" + "0" * 64})
    with pytest.raises(VerificationError, match="no X-Mollie-Signature signature matches"):
        provider(allow_classic=True).verify(request)


def test_a_secret_is_required_even_when_classic_is_allowed() -> None:
    config = ProviderConfig("mollie", "mollie", (), options={"allow_classic": True})
    with pytest.raises(ConfigError, match="secret"):
        MollieProvider(config)


@pytest.mark.parametrize(
    "options",
    [{"allow_classic": "yes"}, {"classic_dedup_seconds": 0}, {"classic_dedup_seconds": True}],
)
def test_rejects_invalid_classic_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        provider(**options)


# --- payment events -----------------------------------------------------------------------


def test_payment_paid_is_a_success_in_minor_units() -> None:
    [paid] = payment_events("payment.paid")
    assert (paid.kind, paid.payment_id) == (K.SUCCEEDED, PAID)
    assert (paid.amount, paid.currency) == (1000, "EUR")
    assert paid.occurred_at == 1710926917.0


def test_payment_authorized_keeps_zero_decimal_currencies_whole() -> None:
    [authorized] = payment_events("payment.authorized")
    assert (authorized.kind, authorized.amount, authorized.currency) == (K.AUTHORIZED, 1500, "JPY")


@pytest.mark.parametrize(
    ("event_type", "kind", "amount"),
    [
        ("payment.failed", K.FAILED, 1250),
        ("payment.canceled", K.CANCELED, 3900),
        ("payment.expired", K.CANCELED, 2495),
    ],
)
def test_failed_canceled_and_expired_payments_end_it(event_type: str, kind: K, amount: int) -> None:
    [event] = payment_events(event_type)
    assert (event.kind, event.amount, event.currency) == (kind, amount, "EUR")


def test_a_simple_payload_gives_the_state_without_an_amount() -> None:
    [failed] = payment_events("payment.failed", simple("payment.failed"))
    assert (failed.kind, failed.payment_id, failed.amount) == (K.FAILED, "tr_Hq2pW8xRt4", None)


def test_refund_refunded_is_that_refunds_amount() -> None:
    [refund] = payment_events("refund.refunded")
    assert (refund.kind, refund.refund_id) == (K.REFUNDED, "re_4qqhO89gsT")
    assert (refund.payment_id, refund.amount, refund.currency) == (PAID, 595, "EUR")
    record = ledger.derive("mollie", refund.payment_id, [*payment_events("payment.paid"), refund])
    assert (record.status, record.amount_refunded) == (PaymentStatus.PARTIALLY_REFUNDED, 595)


def test_refunds_without_a_payment_or_without_money_moved_feed_nothing() -> None:
    assert payment_events("refund.refunded", simple("refund.refunded")) == []
    assert payment_events("refund.failed") == []


# --- agreement with the official SDK ------------------------------------------------------


def sdk_outcome(body: bytes, secrets: list[str], header: str | None) -> str:
    try:
        valid = SignatureValidator(secrets).validate_payload(body.decode(), header)
    except (InvalidSignatureException, TypeError):  # TypeError: non-ASCII signature text
        return "invalid"
    return "signed" if valid else "unsigned"


def payhook_outcome(body: bytes, secrets: list[str], header: str | None) -> str:
    headers = {} if header is None else {"x-mollie-signature": header}
    try:
        [verified] = provider(*secrets).verify(WebhookRequest(body, headers))
    except VerificationError:
        # The only rejection that happens before any signature is compared is "no signature".
        return "unsigned" if not header else "invalid"
    assert verified.verified
    return "signed"


mollie_events = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=20), "type": st.text(min_size=1, max_size=20)},
    optional={"entityId": st.text(max_size=20), "_embedded": st.just({"entity": {"id": "tr_1"}})},
).map(lambda e: json.dumps(e, ensure_ascii=False).encode())
secret_text = st.text(min_size=1, max_size=24)
header_forms = st.sampled_from(
    ["prefixed", "bare", "upper", "other-prefix", "double-prefix", "truncated", "non-ascii",
     "prefix-only", "empty", "absent", "random"]
)  # fmt: skip


def header_for(signature: str, form: str, noise: str) -> str | None:
    return {
        "prefixed": "sha256=" + signature,
        "bare": signature,
        "upper": "sha256=" + signature.upper(),
        "other-prefix": "sha512=" + signature,
        "double-prefix": "sha256=sha256=" + signature,
        "truncated": "sha256=" + signature[:-1],
        "non-ascii": "sha256=" + signature[:-1] + "\u00e9",
        "prefix-only": "sha256=",
        "empty": "",
        "absent": None,
        "random": noise,
    }[form]


@pytest.mark.sdk
@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(secret_text, min_size=1, max_size=3),
    foreign_secret=secret_text,
    use_foreign=st.booleans(),
    body=mollie_events,
    tamper_body=st.booleans(),
    form=header_forms,
    noise=st.text(max_size=72),
)
def test_agrees_with_sdk_on_valid_tampered_and_malformed_requests(
    secrets: list[str],
    foreign_secret: str,
    use_foreign: bool,
    body: bytes,
    tamper_body: bool,
    form: str,
    noise: str,
) -> None:
    signature = sdk_signature(foreign_secret if use_foreign else secrets[-1], body)
    header = header_for(signature, form, noise)
    if tamper_body:
        body = body[:-1] + b" }"
    ours = payhook_outcome(body, secrets, header)
    event(ours)
    assert ours == sdk_outcome(body, secrets, header)
