"""Stripe: the signature verifier (vector, each failure mode, agreement with the official SDK)
and the mapping of Stripe events onto canonical payment events."""

from __future__ import annotations

import itertools
import json
import string
import time
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from hypothesis import event as count_case
from hypothesis import given, settings
from hypothesis import strategies as st

from payhook.core import ledger
from payhook.core.ledger import PaymentStatus
from payhook.core.model import StoredWebhook, WebhookRequest
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.stripe import StripeProvider, stripe_signature
from payhook.service.ingest import Ingest
from tests.conftest import FakeClock, load_event, load_sample

K = PaymentEventKind
SECRET = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc"
OTHER_SECRET = "whsec_test_other_BQokikJOvBiI2HlWgH4olfQ2"
NOW = 1_718_900_471
BODY = load_sample("stripe", "payment_intent.succeeded")

# Hypothesis examples per differential test (reported in the README table).
SDK_AGREEMENT_CASES = 300
SDK_FUTURE_CASES = 100


def provider(
    clock: Callable[[], float], secrets: tuple[str, ...] = (SECRET,), tolerance: int | None = None
) -> StripeProvider:
    return StripeProvider(ProviderConfig("stripe", "stripe", secrets, tolerance), clock)


def sdk_header(body: bytes, secret: str = SECRET, timestamp: int = NOW) -> str:
    """A Stripe-Signature header made by the official SDK, not by the code under test."""
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp)


def request(body: bytes = BODY, header: str | None = None) -> WebhookRequest:
    header = sdk_header(body) if header is None else header
    return WebhookRequest(body=body, headers={"stripe-signature": header} if header else {})


def v1_of(header: str) -> str:
    return dict(item.split("=", 1) for item in header.split(","))["v1"]


# -- known-answer vector -------------------------------------------------------------------


def test_matches_the_stored_known_answer_vector() -> None:
    vector = json.loads(load_event("stripe", "signature_vector.json"))
    body = load_event("stripe", vector["body"])
    header = vector["stripe_signature"]
    assert stripe_signature(vector["secret"], vector["timestamp"], body) == v1_of(header)
    clock = FakeClock(vector["timestamp"])
    events = provider(clock, (vector["secret"],)).verify(request(body, header))
    assert [(e.event_id, e.event_type) for e in events] == [
        ("evt_3PTmQyLkdIwHu7ix1Ysr4G7b", "payment_intent.succeeded")
    ]
    assert events[0].occurred_at == 1718900470.0
    assert events[0].payload == body


# -- one test per failure mode -------------------------------------------------------------


def test_accepts_a_fresh_authentic_delivery(clock: FakeClock) -> None:
    clock.now = NOW
    assert provider(clock).verify(request())[0].event_id == "evt_3PTmQyLkdIwHu7ix1Ysr4G7b"


def test_rejects_a_missing_signature_header(clock: FakeClock) -> None:
    clock.now = NOW
    with pytest.raises(VerificationError, match="missing"):
        provider(clock).verify(WebhookRequest(body=BODY, headers={}))


def test_rejects_a_header_without_timestamp(clock: FakeClock) -> None:
    clock.now = NOW
    header = f"v1={v1_of(sdk_header(BODY))}"
    with pytest.raises(VerificationError, match="no timestamp"):
        provider(clock).verify(request(header=header))


@pytest.mark.parametrize("timestamp", ["abc", "", "1718900471.0", "-1718900471", "0x1a", "1e9"])
def test_rejects_a_non_numeric_timestamp(clock: FakeClock, timestamp: str) -> None:
    clock.now = NOW
    header = f"t={timestamp},v1={v1_of(sdk_header(BODY))}"
    with pytest.raises(VerificationError):
        provider(clock).verify(request(header=header))


def test_rejects_a_header_without_v1_signature(clock: FakeClock) -> None:
    clock.now = NOW
    # The right MAC under another scheme name (v0 is Stripe's test-mode legacy scheme).
    header = f"t={NOW},v0={stripe_signature(SECRET, NOW, BODY)}"
    with pytest.raises(VerificationError, match="no v1"):
        provider(clock).verify(request(header=header))


def test_rejects_a_signature_made_with_another_secret(clock: FakeClock) -> None:
    clock.now = NOW
    with pytest.raises(VerificationError, match="no Stripe-Signature signature matches"):
        provider(clock).verify(request(header=sdk_header(BODY, OTHER_SECRET)))


def test_rejects_a_tampered_body(clock: FakeClock) -> None:
    clock.now = NOW
    tampered = BODY.replace(b'"amount": 2000', b'"amount": 2001', 1)
    assert tampered != BODY
    with pytest.raises(VerificationError):
        provider(clock).verify(request(tampered, header=sdk_header(BODY)))


def test_rejects_a_tampered_timestamp(clock: FakeClock) -> None:
    clock.now = NOW
    header = sdk_header(BODY).replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(VerificationError):
        provider(clock).verify(request(header=header))


def test_rejects_a_timestamp_older_than_the_tolerance(clock: FakeClock) -> None:
    clock.now = NOW + 300
    assert provider(clock).verify(request())  # exactly at the edge: still accepted
    clock.advance(1)
    with pytest.raises(VerificationError, match="older than the tolerance"):
        provider(clock).verify(request())


def test_rejects_a_timestamp_too_far_in_the_future(clock: FakeClock) -> None:
    clock.now = NOW - 300
    assert provider(clock).verify(request())
    clock.advance(-1)
    with pytest.raises(VerificationError, match="future"):
        provider(clock).verify(request())


def test_tolerance_is_configurable(clock: FakeClock) -> None:
    clock.now = NOW + 61
    with pytest.raises(VerificationError):
        provider(clock, tolerance=60).verify(request())
    assert provider(clock, tolerance=61).verify(request())
    clock.now = NOW + 3000
    assert provider(clock, tolerance=3600).verify(request())
    with pytest.raises(VerificationError):
        provider(clock).verify(request())  # the default (300 s) still applies elsewhere


@pytest.mark.parametrize("signing_secret", [SECRET, OTHER_SECRET])
def test_accepts_any_configured_secret_during_rotation(
    clock: FakeClock, signing_secret: str
) -> None:
    clock.now = NOW
    rotating = provider(clock, (OTHER_SECRET, SECRET))
    assert rotating.verify(request(header=sdk_header(BODY, signing_secret)))


def test_accepts_a_header_with_several_v1_entries(clock: FakeClock) -> None:
    clock.now = NOW
    good = stripe_signature(SECRET, NOW, BODY)
    stale = stripe_signature(OTHER_SECRET, NOW, BODY)
    for entries in itertools.permutations([f"v1={good}", f"v1={stale}", f"v0={stale}"]):
        assert provider(clock).verify(request(header=",".join([f"t={NOW}", *entries])))


def test_an_authentic_body_that_is_not_json_is_a_payload_error(clock: FakeClock) -> None:
    clock.now = NOW
    for body in (b"not json", b"[1, 2]", b"\xff\xfe", b'{"type": "x"}'):
        header = f"t={NOW},v1={stripe_signature(SECRET, NOW, body)}"
        with pytest.raises(PayloadError):
            provider(clock).verify(request(body, header=header))


# -- agreement with the official SDK -------------------------------------------------------


def test_accepts_deliveries_signed_by_the_stripe_sdk() -> None:
    body = load_sample("stripe", "charge.refunded")
    now = time.time()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET)
    events = provider(lambda: now).verify(request(body, header))
    assert events[0].event_type == "charge.refunded"


def test_the_stripe_sdk_accepts_our_sample_deliveries() -> None:
    now = time.time()
    ours = provider(lambda: now)
    for event_type in ours.sample_event_types:
        sample = ours.sample_request(event_type)
        event = stripe.Webhook.construct_event(
            sample.body, sample.headers["stripe-signature"], SECRET
        )
        assert (event.id, event.type) == (
            ours.verify(sample)[0].event_id,
            event_type,
        )


_ID = st.text(string.ascii_letters + string.digits, min_size=1, max_size=24)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@st.composite
def stripe_bodies(draw: st.DrawFn) -> bytes:
    event = {
        "id": "evt_" + draw(_ID),
        "object": "event",
        "type": draw(st.sampled_from(StripeProvider.sample_event_types)),
        "data": {"object": draw(st.dictionaries(st.text(max_size=8), _JSON, max_size=4))},
    }
    ascii_only = draw(st.booleans())
    return json.dumps(
        event, ensure_ascii=ascii_only, indent=draw(st.sampled_from([None, 2]))
    ).encode()


def flip_ascii_bit(body: bytes, data: st.DataObject) -> bytes:
    """Flip one low bit of an ASCII byte: the body stays UTF-8, which the SDK requires."""
    positions = [i for i, byte in enumerate(body) if byte < 0x80]
    i = data.draw(st.sampled_from(positions))
    bit = data.draw(st.integers(0, 6))
    return body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1 :]


def mutate(
    mutation: str, body: bytes, header: str, secret: str, data: st.DataObject
) -> tuple[bytes, str | None, str]:
    """Apply one mutation; returns (body, header, secret the receiver holds)."""
    timestamp, v1 = header.split(",")
    if mutation == "body":
        return flip_ascii_bit(body, data), header, secret
    if mutation == "timestamp":
        delta = data.draw(st.integers(-100, 100).filter(bool))
        return body, f"t={int(timestamp[2:]) + delta},{v1}", secret
    if mutation == "signature":
        i = data.draw(st.integers(3, len(v1) - 1))
        swapped = "0" if v1[i] != "0" else "1"
        return body, f"{timestamp},{v1[:i]}{swapped}{v1[i + 1 :]}", secret
    if mutation == "secret":
        # HMAC pads its key with zero bytes, so a suffix of NULs is the same key (the SDK
        # agrees): the held secret must differ as a key.
        suffix = data.draw(st.text(min_size=1, max_size=4).filter(lambda s: s.strip("\x00")))
        return body, header, secret + suffix
    if mutation == "header":
        return body, None, secret
    if mutation == "extra_v1":
        return body, f"{timestamp},v1={'ab' * 32},{v1},v0={'cd' * 32}", secret
    if mutation == "v0_only":
        return body, f"{timestamp},v0={v1[3:]}", secret
    return body, header, secret


def ours_accept(body: bytes, header: str | None, secret: str, now: float) -> bool:
    headers = {"stripe-signature": header} if header is not None else {}
    try:
        provider(lambda: now, (secret,)).verify(WebhookRequest(body=body, headers=headers))
    except VerificationError:
        return False
    return True


def sdk_accepts(body: bytes, header: str | None, secret: str) -> bool:
    try:
        stripe.Webhook.construct_event(body, header, secret, tolerance=300)
    except stripe.SignatureVerificationError:
        return False
    return True


_SECRETS = st.text(min_size=1, max_size=40).map(lambda s: "whsec_" + s)
_MUTATIONS = ["none", "body", "timestamp", "signature", "secret", "header", "extra_v1", "v0_only"]
_EXPECTED = {"none": True, "extra_v1": True}
# Offsets (s) from now where both rules apply: within the tolerance, or too old. The 10 s
# margins keep each case clear of the edge: the SDK reads its own clock a moment later.
_SHARED_OFFSETS = st.one_of(st.integers(-290, 290), st.integers(-86_400, -310))


@pytest.mark.sdk
@settings(max_examples=SDK_AGREEMENT_CASES, deadline=None)
@given(
    body=stripe_bodies(),
    secret=_SECRETS,
    offset=_SHARED_OFFSETS,
    mutation=st.sampled_from(_MUTATIONS),
    data=st.data(),
)
def test_agrees_with_the_stripe_sdk_on_every_accept_or_reject(
    body: bytes, secret: str, offset: int, mutation: str, data: st.DataObject
) -> None:
    count_case(f"mutation={mutation}, {'too old' if offset < -300 else 'fresh'}")
    now = time.time()
    header = sdk_header(body, secret, int(now) + offset)
    body, sent_header, held_secret = mutate(mutation, body, header, secret, data)
    ours = ours_accept(body, sent_header, held_secret, now)
    assert ours == sdk_accepts(body, sent_header, held_secret)
    assert ours == (_EXPECTED.get(mutation, False) and offset > -300)


@pytest.mark.sdk
@settings(max_examples=SDK_FUTURE_CASES, deadline=None)
@given(body=stripe_bodies(), secret=_SECRETS, ahead=st.integers(310, 10 * 365 * 86_400))
def test_rejects_future_timestamps_that_the_stripe_sdk_accepts(
    body: bytes, secret: str, ahead: int
) -> None:
    """The one documented difference: the SDK only rejects old timestamps."""
    now = time.time()
    header = sdk_header(body, secret, int(now) + ahead)
    assert sdk_accepts(body, header, secret)
    assert not ours_accept(body, header, secret, now)


# -- payment events ------------------------------------------------------------------------


def stored(
    name: str, mutate_event: Callable[[dict[str, Any]], None] | None = None
) -> StoredWebhook:
    """A fixture delivered through the real ingest step (so it is verified on the way)."""
    body = load_sample("stripe", name.removesuffix(".json"))
    if mutate_event is not None:
        event = json.loads(body)
        mutate_event(event)
        body = json.dumps(event).encode()
    now = float(json.loads(body)["created"])
    ingest = Ingest({"stripe": provider(lambda: now)}, clock=lambda: now + 1)
    [webhook] = ingest.verify("stripe", request(body, sdk_header(body, timestamp=int(now))))
    return webhook


def _dispute_status(status: str) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        event["data"]["object"]["status"] = status

    return mutate


def payment_events(name: str, **kwargs: Any) -> list[PaymentEvent]:
    return provider(time.time).payment_events(stored(name, **kwargs))


PI = "pi_3PTmQyLkdIwHu7ix1QGdr0Xc"


@pytest.mark.parametrize(
    ("fixture", "kind", "payment_id", "amount", "currency"),
    [
        ("payment_intent.succeeded.json", K.SUCCEEDED, PI, 2000, "USD"),
        (
            "payment_intent.payment_failed.json",
            K.FAILED,
            "pi_3PTmSbLkdIwHu7ix0K2nYh1t",
            4500,
            "USD",
        ),
        ("payment_intent.canceled.json", K.CANCELED, "pi_3PTmUkLkdIwHu7ix1gQ6HmLr", 1500, "USD"),
        ("payment_intent.processing.json", K.PENDING, "pi_3PTmVwLkdIwHu7ix0a1Gf8sJ", 9900, "EUR"),
        (
            "payment_intent.requires_action.json",
            K.REQUIRES_ACTION,
            "pi_3PTmXaLkdIwHu7ix1F0bq9Zt",
            2500,
            "USD",
        ),
    ],
)
def test_maps_payment_intent_events_to_lifecycle_kinds(
    fixture: str, kind: PaymentEventKind, payment_id: str, amount: int, currency: str
) -> None:
    [event] = payment_events(fixture)
    event_json = json.loads(load_sample("stripe", fixture.removesuffix(".json")))
    assert (event.kind, event.payment_id, event.amount, event.currency) == (
        kind,
        payment_id,
        amount,
        currency,
    )
    assert (event.event_id, event.occurred_at) == (event_json["id"], float(event_json["created"]))
    assert (event.refunded_total, event.refund_id, event.captured_hint) == (None, None, None)


def test_charge_refunded_gives_the_cumulative_refund_and_the_captured_amount() -> None:
    [event] = payment_events("charge.refunded.json")
    assert (event.kind, event.payment_id) == (K.REFUNDED, PI)
    assert (event.refunded_total, event.captured_hint, event.amount) == (500, 2000, None)


def test_refund_created_gives_the_refund_id_and_its_amount() -> None:
    [event] = payment_events("refund.created.json")
    assert (event.kind, event.payment_id) == (K.REFUNDED, PI)
    assert (event.refund_id, event.amount, event.currency) == (
        "re_3PTmQyLkdIwHu7ix1mXb0J7a",
        500,
        "USD",
    )


def test_a_released_authorization_is_a_cancellation_not_a_refund() -> None:
    def uncaptured(event: dict[str, Any]) -> None:
        charge = event["data"]["object"]
        charge.update(captured=False, amount_captured=0, amount_refunded=charge["amount"])

    [event] = payment_events("charge.refunded.json", mutate_event=uncaptured)
    assert (event.kind, event.payment_id, event.refunded_total) == (K.CANCELED, PI, None)


def test_a_pending_refund_is_not_counted_until_it_succeeds() -> None:
    def pending(event: dict[str, Any]) -> None:
        event["data"]["object"]["status"] = "pending"

    assert payment_events("refund.created.json", mutate_event=pending) == []


def test_a_failed_refund_is_not_a_refund() -> None:
    def failed(event: dict[str, Any]) -> None:
        event["data"]["object"]["status"] = "failed"

    assert payment_events("refund.created.json", mutate_event=failed) == []


def test_refund_events_combine_into_one_refund_whatever_the_order() -> None:
    """charge.refunded (cumulative) and refund.created (per refund) describe the same 5.00."""
    events = [
        e
        for name in ("payment_intent.succeeded.json", "charge.refunded.json", "refund.created.json")
        for e in payment_events(name)
    ]
    for order in itertools.permutations(events):
        record = ledger.derive("stripe", PI, list(order))
        assert (record.status, record.amount_captured, record.amount_refunded) == (
            PaymentStatus.PARTIALLY_REFUNDED,
            2000,
            500,
        )
        assert record.flags == ()


def test_maps_dispute_events_with_their_outcome() -> None:
    [opened] = payment_events("charge.dispute.created.json")
    [won] = payment_events("charge.dispute.closed.json", mutate_event=_dispute_status("won"))
    [lost] = payment_events("charge.dispute.closed.json")
    assert [(e.kind, e.payment_id, e.dispute_id, e.amount) for e in (opened, won, lost)] == [
        (K.DISPUTE_OPENED, PI, "dp_1PTnB4LkdIwHu7ixr3Xq0dLm", 2000),
        (K.DISPUTE_WON, PI, "dp_1PTnB4LkdIwHu7ixr3Xq0dLm", 2000),
        (K.DISPUTE_LOST, PI, "dp_1PTnB4LkdIwHu7ixr3Xq0dLm", 2000),
    ]
    record = ledger.derive("stripe", PI, [*payment_events("payment_intent.succeeded.json"), opened])
    assert (record.status, record.amount_disputed) == (PaymentStatus.DISPUTED, 2000)


def test_events_about_other_objects_give_no_payment_event() -> None:
    def customer_created(event: dict[str, Any]) -> None:
        event["type"] = "customer.created"
        event["data"]["object"] = {"id": "cus_QKRJ3sYxXb8v1P", "object": "customer"}

    assert payment_events("payment_intent.succeeded.json", mutate_event=customer_created) == []


def test_an_event_without_data_object_is_a_payload_error() -> None:
    def no_object(event: dict[str, Any]) -> None:
        event["data"] = {}

    with pytest.raises(PayloadError):
        payment_events("payment_intent.succeeded.json", mutate_event=no_object)
