"""GoCardless: verification quirks, batch splitting, event mapping, agreement with gocardless-pro.

What every provider keeps (a changed body, a missing header or a foreign secret refused,
rotation) is in the contract suite, tests/providers/test_contract.py. Deliveries here are signed
with a bare HMAC reference, never with the engine under test; batches are made of the samples
(``payhook/samples/gocardless``) as recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

import pytest
from gocardless_pro import webhooks as sdk_webhooks
from gocardless_pro.errors import InvalidSignatureError
from hypothesis import event, given, settings
from hypothesis import strategies as st

from payhook.core import ledger
from payhook.core.ledger import PaymentStatus
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, webhook_id_for
from payhook.core.payment import PaymentEvent
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.gocardless import GoCardlessProvider
from tests.conftest import FakeClock, load_event, load_sample

SECRET = "ED7D658C-D8EB-4941-948B-3973214F2D49"  # the SDK's own test key
LIFECYCLE = ("payments.submitted", "payments.confirmed", "mandates.active")
FAILURES = ("payments.failed", "payments.cancelled")
REFUNDS = ("refunds.created", "refunds.paid", "refunds.failed")
CHARGEBACK = ("payments.charged_back", "payments.chargeback_cancelled")


def provider(*secrets: str) -> GoCardlessProvider:
    return GoCardlessProvider(ProviderConfig("gc", "gocardless", secrets or (SECRET,)), FakeClock())


def reference_signature(secret: str, body: bytes) -> str:
    """GoCardless's documented signature written out: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, secret: str = SECRET) -> WebhookRequest:
    return WebhookRequest(body, {"webhook-signature": reference_signature(secret, body)})


def batch(*event_types: str) -> bytes:
    """One delivery of the recorded samples of ``event_types``, in that order, indented as a
    person writes JSON (the samples' own ``meta`` is the first one's)."""
    samples = [json.loads(load_sample("gocardless", t)) for t in event_types]
    events = [e for sample in samples for e in sample["events"]]
    return (json.dumps({"events": events, "meta": samples[0]["meta"]}, indent=2) + "\n").encode()


def stored(p: GoCardlessProvider, event: VerifiedEvent) -> StoredWebhook:
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


def payment_events(body: bytes) -> list[PaymentEvent]:
    p = provider()
    return [e for v in p.verify(signed(body)) for e in p.payment_events(stored(p, v))]


# --- known answer -------------------------------------------------------------------------


def test_known_vector_from_the_sdk_test_suite_verifies_and_splits() -> None:
    # gocardless-pro-python tests/webhooks_test.py: fixture body, key and signature.
    body = load_event("gocardless", "sdk_webhook_body.json").strip()  # as the SDK test reads it
    header = "2693754819d3e32d7e8fcb13c729631f316c6de8dc1cf634d6527f1c07276e7e"
    events = provider().verify(WebhookRequest(body, {"webhook-signature": header}))
    assert [(e.event_id, e.event_type) for e in events] == [
        ("EV00BD05S5VM2T", "subscriptions.created"),
        ("EV00BD05TB8K63", "mandates.created"),
    ]
    assert events[0].occurred_at == pytest.approx(1530782031.404)
    assert json.loads(events[1].payload)["links"] == {"mandate": "MD000AMA19XGEC"}


# --- verification -------------------------------------------------------------------------


def test_a_bad_signature_gets_498_token_invalid() -> None:
    assert GoCardlessProvider.rejection_status == 498


@pytest.mark.parametrize(
    "mangle",
    [
        str.upper,
        lambda sig: sig[:-2],
        lambda sig: f" {sig} ",
        lambda sig: f"sha256={sig}",
        lambda sig: sig[:-1] + "\u00e9",
        lambda sig: sig[:-1] + "\ud800",
        lambda sig: "not hex at all",
        lambda sig: "a" * 10_000,
    ],
    ids=["upper", "truncated", "padded", "prefixed", "non-ascii", "surrogate", "garbage", "long"],
)
def test_rejects_any_spelling_but_the_exact_lower_case_hex(mangle: Callable[[str], str]) -> None:
    body = b'{"events":[]}'
    header = mangle(reference_signature(SECRET, body))
    with pytest.raises(VerificationError):  # never a foreign error (TypeError, ValueError)
        provider().verify(WebhookRequest(body, {"webhook-signature": header}))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b'{"meta":{}}', "events"),
        (b'{"events":{}}', "events"),
        (b'{"events":["EV1"]}', "not an object"),
        (b'{"events":[{"resource_type":"payments","action":"paid_out"}]}', "id"),
        (b'{"events":[{"id":"EV1","action":"paid_out"}]}', "resource_type"),
    ],
)
def test_an_authentic_but_unusable_body_is_a_payload_error(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        provider().verify(signed(body))


def test_an_empty_batch_is_authentic_and_holds_no_event() -> None:
    assert provider().verify(signed(b'{"events":[],"meta":{"webhook_id":"WB1"}}')) == []


def test_each_event_of_a_batch_is_stored_as_its_own_json() -> None:
    events = provider().verify(signed(batch(*LIFECYCLE)))
    assert [e.event_id for e in events] == ["EV0123ABCD4567", "EV0123ABCD4568", "EV0123ABCD4569"]
    assert [e.event_type for e in events] == list(LIFECYCLE)
    assert json.loads(events[1].payload)["id"] == "EV0123ABCD4568"
    assert b"EV0123ABCD4567" not in events[1].payload


def canonical(item: object) -> bytes:
    """An event as payhook stores it: compact, ASCII-only JSON, keys in the order sent."""
    return json.dumps(item, separators=(",", ":")).encode()


def test_each_event_is_stored_as_its_canonical_json() -> None:
    body = batch(*LIFECYCLE)  # indented, as a person writes
    events = provider().verify(signed(body))
    assert [e.payload for e in events] == [canonical(i) for i in json.loads(body)["events"]]


def test_an_event_stores_as_the_same_bytes_however_the_batch_spells_it() -> None:
    data = json.loads(batch(*LIFECYCLE))
    data["events"][0]["details"]["description"] = "Zahlung für Bestellung 42 übermittelt"
    spellings = [
        json.dumps(data).encode(),
        json.dumps(data, indent=2, ensure_ascii=False).encode(),
        json.dumps(data, separators=(",", ":")).encode(),
    ]
    stored = [[(e.event_id, e.payload) for e in provider().verify(signed(b))] for b in spellings]
    assert stored[0] == stored[1] == stored[2]
    assert [i for i, _ in stored[0]] == ["EV0123ABCD4567", "EV0123ABCD4568", "EV0123ABCD4569"]
    assert json.loads(stored[0][0][1]) == data["events"][0]


def test_a_lone_surrogate_in_an_event_is_stored_as_its_escape() -> None:
    body = b'{"events":[{"id":"EV1","resource_type":"payments","action":"paid_out","x":"\\udc80"}]}'
    [verified] = provider().verify(signed(body))
    assert verified.payload == body[len(b'{"events":[') : -len(b"]}")]  # ASCII, as sent
    assert json.loads(verified.payload)["x"] == "\udc80"


def test_a_redelivered_batch_yields_the_same_event_ids_and_payloads() -> None:
    body = batch(*LIFECYCLE)
    first, second = provider().verify(signed(body)), provider().verify(signed(body))
    assert [(e.event_id, e.payload) for e in first] == [(e.event_id, e.payload) for e in second]


# --- payment events -----------------------------------------------------------------------


def test_a_submitted_then_confirmed_payment_succeeds_without_amounts() -> None:
    pending, succeeded = payment_events(batch(*LIFECYCLE))  # the mandate adds nothing
    assert (pending.kind, succeeded.kind) == (K.PENDING, K.SUCCEEDED)
    assert pending.payment_id == succeeded.payment_id == "PM00ABC12DEF34"
    assert (succeeded.amount, succeeded.currency) == (None, None)
    assert succeeded.occurred_at == pytest.approx(1768467607.402)


def test_failed_and_cancelled_payments_map_to_failed_and_canceled() -> None:
    failed, cancelled = payment_events(batch(*FAILURES))
    assert (failed.kind, failed.payment_id) == (K.FAILED, "PM00FAIL000001")
    assert (cancelled.kind, cancelled.payment_id) == (K.CANCELED, "PM00CANC000002")


def test_refund_events_carry_the_refund_id_but_no_amount() -> None:
    created, paid = payment_events(batch(*REFUNDS))  # refunds.failed maps to nothing
    assert (created.kind, paid.kind) == (K.REFUNDED, K.REFUNDED)
    assert created.refund_id == paid.refund_id == "RF00REFD000001"
    assert (paid.payment_id, paid.amount) == ("PM00ABC12DEF34", None)


def test_a_cancelled_chargeback_ends_as_a_won_dispute() -> None:
    opened, cancelled = payment_events(batch(*CHARGEBACK))
    assert (opened.kind, cancelled.kind) == (K.DISPUTE_OPENED, K.DISPUTE_WON)
    assert opened.dispute_id == cancelled.dispute_id == "PM00CHBK000001"
    record = ledger.derive("gc", "PM00CHBK000001", [opened, cancelled])
    assert record.status is PaymentStatus.DISPUTE_WON


def test_a_settled_chargeback_ends_as_a_lost_dispute() -> None:
    body = batch(*CHARGEBACK).replace(
        b'"action": "chargeback_cancelled"', b'"action": "chargeback_settled"'
    )
    assert b"chargeback_settled" in body
    record = ledger.derive("gc", "PM00CHBK000001", payment_events(body))
    assert record.status is PaymentStatus.DISPUTE_LOST


def test_a_payment_event_without_its_payment_link_is_a_payload_error() -> None:
    p = provider()
    [verified] = p.verify(
        signed(b'{"events":[{"id":"EV1","resource_type":"payments","action":"paid_out"}]}')
    )
    with pytest.raises(PayloadError, match=r"links\.payment"):
        p.payment_events(stored(p, verified))


# --- agreement with the official SDK ------------------------------------------------------


def sdk_outcome(body: bytes, secrets: list[str], header: str) -> list[str] | None:
    """Event ids the SDK parses with any of the secrets; None when it rejects the signature."""
    for secret in secrets:
        try:
            return [e.id for e in sdk_webhooks.parse(body, secret, header)]
        except InvalidSignatureError:
            continue
        except TypeError:
            # compare_digest refuses non-ASCII text: a signature rejection (the bodies here
            # are well-formed, so no TypeError can come from parsing them).
            continue
    return None


def payhook_outcome(body: bytes, secrets: list[str], header: str) -> list[str] | None:
    config = ProviderConfig("gc", "gocardless", tuple(secrets))
    try:
        events = GoCardlessProvider(config, FakeClock()).verify(
            WebhookRequest(body, {"webhook-signature": header})
        )
    except VerificationError:
        return None
    return [e.event_id for e in events]


ids = st.text(min_size=1, max_size=16)
gc_events = st.fixed_dictionaries(
    {"id": ids, "resource_type": ids, "action": ids},
    optional={"links": st.dictionaries(ids, ids, max_size=2), "created_at": st.text(max_size=30)},
)
gc_bodies = st.builds(
    lambda events, ascii_only, compact: json.dumps(
        {"events": events, "meta": {"webhook_id": "WB1"}},
        ensure_ascii=ascii_only,
        separators=(",", ":") if compact else None,
    ).encode(),
    st.lists(gc_events, max_size=3),
    st.booleans(),
    st.booleans(),
)
secret_text = st.text(min_size=1, max_size=24)
header_mangles = st.sampled_from(
    ["none", "upper", "truncate", "pad", "prefix", "flip", "non-ascii", "empty", "random"]
)


def mangle(signature: str, how: str, noise: str) -> str:
    return {
        "none": signature,
        "upper": signature.upper(),
        "truncate": signature[:-1],
        "pad": signature + " ",
        "prefix": "sha256=" + signature,
        "flip": signature[:-1] + ("0" if signature[-1] != "0" else "1"),
        "non-ascii": signature[:-1] + "\u00e9",
        "empty": "",
        "random": noise,
    }[how]


@pytest.mark.sdk
@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(secret_text, min_size=1, max_size=3),
    foreign_secret=secret_text,
    use_foreign=st.booleans(),
    body=gc_bodies,
    tamper_body=st.booleans(),
    how=header_mangles,
    noise=st.text(max_size=70),
)
def test_agrees_with_sdk_on_valid_tampered_and_malformed_requests(
    secrets: list[str],
    foreign_secret: str,
    use_foreign: bool,
    body: bytes,
    tamper_body: bool,
    how: str,
    noise: str,
) -> None:
    signature = reference_signature(foreign_secret if use_foreign else secrets[0], body)
    header = mangle(signature, how, noise)
    if tamper_body:
        body = body[:-1] + b" }"
    ours = payhook_outcome(body, secrets, header)
    event("accepted" if ours is not None else "rejected")
    assert ours == sdk_outcome(body, secrets, header)


# --- what is accepted and stored depends only on what json.loads reads --------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=6,
)
items = st.one_of(
    gc_events,
    gc_events.flatmap(lambda e: st.sampled_from([k for k in e if e[k]]).map(lambda k: {**e, k: 7})),
    json_values,
)
batch_bodies = st.builds(
    lambda events, rest, style, ascii_only, events_last: json.dumps(
        {**rest, "events": events} if events_last else {"events": events, **rest},
        ensure_ascii=ascii_only,
        separators=(",", ":") if style == "compact" else None,
        indent=2 if style == "indented" else None,
    ).encode(),
    st.lists(items, max_size=3) | json_values,
    st.dictionaries(st.sampled_from(["meta", "events_count", "x"]), json_values, max_size=2),
    st.sampled_from(["compact", "spaced", "indented"]),
    st.booleans(),
    st.booleans(),
)


def outcome(body: bytes) -> object:
    """What verify makes of a correctly signed body: its events, parsed, or the error type."""
    try:
        events = provider().verify(signed(body))
    except (PayloadError, VerificationError) as exc:
        return type(exc).__name__
    for verified in events:
        assert verified.payload == canonical(json.loads(verified.payload))  # stored canonical
    return [(e.event_id, e.event_type, json.loads(e.payload), e.occurred_at) for e in events]


@settings(max_examples=400, deadline=None)
@given(body=batch_bodies, data=st.data())
def test_what_is_accepted_and_each_event_depend_only_on_what_json_loads_reads(
    body: bytes, data: st.DataObject
) -> None:
    if data.draw(st.booleans()):  # a broken body, to check rejections too
        cut = data.draw(st.integers(0, len(body)))
        junk = data.draw(st.sampled_from([b"", b"}", b"]", b",", b'"', b" ", b"x"]))
        body = body[:cut] + junk + body[cut + data.draw(st.integers(0, 2)) :]
    try:
        decoded = json.loads(body)
    except ValueError:
        event("invalid JSON")
        assert outcome(body) == "PayloadError"
        return
    ours = outcome(body)
    event(ours if isinstance(ours, str) else "accepted")
    # The same value written canonically verifies to the same events.
    assert ours == outcome(json.dumps(decoded).encode())
