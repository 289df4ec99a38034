"""Standard Webhooks (and Svix): the known-answer vector, the scheme's own failure modes (the
contract suite, tests/providers/test_contract.py, covers the ones every provider shares), and
agreement with the official ``standardwebhooks`` and ``svix`` libraries."""

from __future__ import annotations

import base64
import json
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import event as count_case
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook

from payhook.core.model import WebhookRequest
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.standard import StandardWebhooksProvider
from tests.conftest import FakeClock, load_event, load_sample

VECTOR = json.loads(load_event("standard", "signature_vector.json"))
SECRET = VECTOR["secret"]
OTHER_SECRET = "whsec_" + base64.b64encode(b"another key of 24 bytes!").decode()
MSG_ID = "msg_2hXc7ZqLkP0vNw4RtYb9"
NOW = 1_718_900_471
BODY = load_sample("standard", "invoice.paid")

# Hypothesis examples per differential test (reported in the README table).
SDK_AGREEMENT_CASES = 300


def provider(
    clock: Callable[[], float], secrets: tuple[str, ...] = (SECRET,), tolerance: int | None = None
) -> StandardWebhooksProvider:
    return StandardWebhooksProvider(ProviderConfig("std", "standard", secrets, tolerance), clock)


def lib_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """A signature made by the reference library, not by the code under test."""
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


def request(
    body: bytes = BODY,
    *,
    msg_id: str = MSG_ID,
    timestamp: int | str = NOW,
    signature: str | None = None,
    prefix: str = "webhook",
    omit: str = "",
) -> WebhookRequest:
    if signature is None:
        signature = lib_signature(SECRET, msg_id, int(timestamp), body)
    headers = {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(timestamp),
        f"{prefix}-signature": signature,
    }
    headers.pop(f"{prefix}-{omit}", None)
    return WebhookRequest(body=body, headers=headers)


# -- known-answer vector -------------------------------------------------------------------


def test_matches_the_standard_webhooks_known_answer_vector() -> None:
    body = VECTOR["body"].encode()
    clock = FakeClock(VECTOR["timestamp"])
    signed = provider(clock).engine.sign(
        body, timestamp=VECTOR["timestamp"], message_id=VECTOR["msg_id"]
    )
    assert signed["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    delivery = request(
        body,
        msg_id=VECTOR["msg_id"],
        timestamp=VECTOR["timestamp"],
        signature=VECTOR["signature"],
    )
    [event] = provider(clock).verify(delivery)
    assert (event.event_id, event.event_type) == ("msg_p5jXN8AQM9LWM0D4loKWxJek", "unknown")
    assert (event.occurred_at, event.payload) == (1614265330.0, body)


# -- the scheme's own failure modes -------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "1718900471.0", "-1718900471", "0x1a", "1e9", " 1718900471"]
)
def test_rejects_a_non_numeric_timestamp(clock: FakeClock, timestamp: str) -> None:
    clock.now = NOW
    signature = lib_signature(SECRET, MSG_ID, NOW, BODY)
    with pytest.raises(VerificationError):
        provider(clock).verify(request(timestamp=timestamp, signature=signature))


def test_rejects_a_header_without_v1_entry(clock: FakeClock) -> None:
    clock.now = NOW
    mac = lib_signature(SECRET, MSG_ID, NOW, BODY).removeprefix("v1,")
    with pytest.raises(VerificationError, match="no webhook-signature signature matches"):
        provider(clock).verify(request(signature=f"v2,{mac}"))


def test_rejects_a_tampered_timestamp(clock: FakeClock) -> None:
    clock.now = NOW
    signature = lib_signature(SECRET, MSG_ID, NOW, BODY)
    with pytest.raises(VerificationError):
        provider(clock).verify(request(timestamp=NOW + 1, signature=signature))


def test_rejects_a_tampered_message_id(clock: FakeClock) -> None:
    clock.now = NOW
    signature = lib_signature(SECRET, MSG_ID, NOW, BODY)
    with pytest.raises(VerificationError):
        provider(clock).verify(request(msg_id=MSG_ID + "x", signature=signature))


def test_tolerance_is_configurable(clock: FakeClock) -> None:
    clock.now = NOW - 61
    with pytest.raises(VerificationError):
        provider(clock, tolerance=60).verify(request())
    assert provider(clock, tolerance=61).verify(request())
    clock.now = NOW + 3000
    assert provider(clock, tolerance=3600).verify(request())
    with pytest.raises(VerificationError):
        provider(clock).verify(request())


def test_accepts_a_header_with_several_v1_entries(clock: FakeClock) -> None:
    clock.now = NOW
    good = lib_signature(SECRET, MSG_ID, NOW, BODY)
    stale = lib_signature(OTHER_SECRET, MSG_ID, NOW, BODY)
    for signature in (f"{stale} {good}", f"{good} {stale}", f"{stale}  {good} "):
        assert provider(clock).verify(request(signature=signature))


def test_accepts_svix_header_names(clock: FakeClock) -> None:
    clock.now = NOW
    [event] = provider(clock).verify(request(prefix="svix"))
    assert event.event_id == MSG_ID


@pytest.mark.parametrize("missing", ["id", "timestamp", "signature"])
def test_the_first_complete_header_set_counts(clock: FakeClock, missing: str) -> None:
    clock.now = NOW
    svix = request(prefix="svix").headers
    partial = request(msg_id="msg_other", signature="v1,AAAA", omit=missing).headers
    [event] = provider(clock).verify(WebhookRequest(BODY, {**partial, **svix}))
    assert event.event_id == MSG_ID  # the incomplete webhook-* set is passed over
    with pytest.raises(VerificationError, match="missing"):
        provider(clock).verify(request(prefix="svix", omit=missing))
    stale = request(signature=lib_signature(OTHER_SECRET, MSG_ID, NOW, BODY)).headers
    with pytest.raises(VerificationError):  # a complete webhook-* set is the one verified
        provider(clock).verify(WebhookRequest(BODY, {**svix, **stale}))


def test_checks_the_timestamp_before_the_signature(clock: FakeClock) -> None:
    clock.now = NOW + 301
    wrong = lib_signature(OTHER_SECRET, MSG_ID, NOW, BODY)
    with pytest.raises(VerificationError, match="older than the tolerance"):
        provider(clock).verify(request(signature=wrong))


@pytest.mark.parametrize(
    "entry",
    [
        "v1",  # no comma
        "v1,abc,def",  # two commas
        "v1,abc",  # bad base64 padding (binascii.Error in the library)
        "v1,QUJD\u00e9",  # non-ASCII (ValueError in the library)
    ],
)
def test_rejects_malformed_signature_entries_with_verification_error(
    clock: FakeClock, entry: str
) -> None:
    clock.now = NOW
    good = lib_signature(SECRET, MSG_ID, NOW, BODY)
    for signature in (entry, f"{entry} {good}", f"{good} {entry}"):
        with pytest.raises(VerificationError):
            provider(clock).verify(request(signature=signature))


def test_where_the_library_raises_value_error_we_raise_verification_error(clock: FakeClock) -> None:
    """STYLE.md: the reference library lets a malformed entry escape as ValueError."""
    clock.now = time.time()
    now = int(clock.now)
    delivery = request(timestamp=now, signature="v1")
    with pytest.raises(ValueError, match="unpack"):
        Webhook(SECRET).verify(delivery.body, delivery.headers)
    with pytest.raises(VerificationError):
        provider(clock).verify(delivery)


def test_ignores_v1a_entries(clock: FakeClock) -> None:
    clock.now = NOW
    good = lib_signature(SECRET, MSG_ID, NOW, BODY)
    ed25519 = "v1a," + base64.b64encode(bytes(64)).decode()
    assert provider(clock).verify(request(signature=f"{ed25519} {good}"))
    with pytest.raises(VerificationError):
        provider(clock).verify(request(signature=ed25519))


def test_an_authentic_body_that_is_not_a_json_object_is_a_payload_error(clock: FakeClock) -> None:
    clock.now = NOW
    for body in (b"not json", b"[1, 2]", b"\xff\xfe{}"):
        ours = provider(clock)
        headers = ours.engine.sign(body, timestamp=NOW, message_id=MSG_ID)
        with pytest.raises(PayloadError):
            ours.verify(WebhookRequest(body, headers))


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_QUJDR"])
def test_rejects_a_secret_that_is_not_base64_at_construction(secret: str) -> None:
    with pytest.raises(ConfigError):
        provider(time.time, (secret,))


def test_rejects_an_empty_secret_at_construction() -> None:
    # HMAC with an empty key is a MAC anyone can compute; the reference library refuses it
    # (EmptyWebhookSecretError).
    with pytest.raises(ConfigError):
        provider(time.time, ("whsec_",))


# -- agreement with the official libraries -------------------------------------------------


def test_accepts_deliveries_signed_by_the_standardwebhooks_library() -> None:
    now = int(time.time())
    signature = Webhook(SECRET).sign(MSG_ID, datetime.fromtimestamp(now, UTC), BODY.decode())
    [event] = provider(lambda: now).verify(request(timestamp=now, signature=signature))
    assert event.event_type == "invoice.paid"


def test_accepts_deliveries_signed_by_the_svix_library() -> None:
    now = int(time.time())
    signature = SvixWebhook(SECRET).sign(MSG_ID, datetime.fromtimestamp(now, UTC), BODY.decode())
    delivery = request(timestamp=now, signature=signature, prefix="svix")
    assert provider(lambda: now).verify(delivery)[0].event_id == MSG_ID


def test_the_libraries_accept_our_sample_deliveries() -> None:
    now = time.time()
    ours = provider(lambda: now)
    for event_type in ours.sample_event_types:
        sample = ours.sample_request(event_type)
        assert Webhook(SECRET).verify(sample.body, sample.headers)["type"] == event_type
        SvixWebhook(SECRET).verify(sample.body, sample.headers)  # raises if it disagrees
        assert ours.verify(sample)[0].event_type == event_type


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_BODIES = st.builds(
    lambda obj, ascii_only: json.dumps(obj, ensure_ascii=ascii_only).encode(),
    st.dictionaries(st.text(max_size=8), _JSON, max_size=5),
    st.booleans(),
)
_SECRETS = st.binary(min_size=1, max_size=64).map(lambda k: "whsec_" + base64.b64encode(k).decode())
_IDS = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=32)
# Both rules reject either side of +-300 s; the 10 s margins keep clear of the edge, since the
# libraries read their own clock a moment later.
_OFFSETS = st.one_of(st.integers(-290, 290), st.integers(-86_400, -310), st.integers(310, 86_400))
_MUTATIONS = [
    "none", "body", "timestamp", "id", "signature", "secret", "drop_header", "extra_entries",
    "v1a_only",
]  # fmt: skip
_ACCEPTED = {"none", "extra_entries"}


def flip_ascii_bit(body: bytes, data: st.DataObject) -> bytes:
    """Flip one low bit of an ASCII byte: the body stays UTF-8, which the libraries require."""
    i = data.draw(st.sampled_from([i for i, byte in enumerate(body) if byte < 0x80]))
    return body[:i] + bytes([body[i] ^ (1 << data.draw(st.integers(0, 6)))]) + body[i + 1 :]


def mutate(
    mutation: str, body: bytes, headers: dict[str, str], secret: str, data: st.DataObject
) -> tuple[bytes, dict[str, str], str]:
    """Apply one mutation; returns (body, headers, secret the receiver holds)."""
    prefix = next(iter(headers)).split("-")[0]
    headers = dict(headers)
    signature = headers[f"{prefix}-signature"]
    if mutation == "body":
        body = flip_ascii_bit(body, data)
    elif mutation == "timestamp":
        delta = data.draw(st.integers(-100, 100).filter(bool))
        headers[f"{prefix}-timestamp"] = str(int(headers[f"{prefix}-timestamp"]) + delta)
    elif mutation == "id":
        headers[f"{prefix}-id"] += data.draw(st.sampled_from(["x", "0", "_"]))
    elif mutation == "signature":
        i = data.draw(st.integers(3, 42))  # the first 40 base64 digits carry only MAC bits
        swapped = "A" if signature[i] != "A" else "B"
        headers[f"{prefix}-signature"] = signature[:i] + swapped + signature[i + 1 :]
    elif mutation == "secret":
        secret = data.draw(_SECRETS.filter(lambda other: other != secret))
    elif mutation == "drop_header":
        del headers[f"{prefix}-{data.draw(st.sampled_from(['id', 'timestamp', 'signature']))}"]
    elif mutation == "extra_entries":
        bogus_v1, v1a = base64.b64encode(bytes(32)).decode(), base64.b64encode(bytes(64)).decode()
        headers[f"{prefix}-signature"] = f"v1,{bogus_v1} v1a,{v1a} {signature}"
    elif mutation == "v1a_only":
        headers[f"{prefix}-signature"] = "v1a," + signature[3:]
    return body, headers, secret


def ours_accept(body: bytes, headers: dict[str, str], secret: str, now: float) -> bool:
    try:
        provider(lambda: now, (secret,)).verify(WebhookRequest(body=body, headers=headers))
    except VerificationError:
        return False
    return True


def library_accepts(
    library: type[Webhook] | type[SvixWebhook], body: bytes, headers: dict[str, str], secret: str
) -> bool:
    try:
        library(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.mark.sdk
@settings(max_examples=SDK_AGREEMENT_CASES, deadline=None)
@given(
    body=_BODIES,
    secret=_SECRETS,
    msg_id=_IDS,
    offset=_OFFSETS,
    prefix=st.sampled_from(["webhook", "svix"]),
    mutation=st.sampled_from(_MUTATIONS),
    data=st.data(),
)
def test_agrees_with_standardwebhooks_and_svix_on_every_accept_or_reject(
    body: bytes,
    secret: str,
    msg_id: str,
    offset: int,
    prefix: str,
    mutation: str,
    data: st.DataObject,
) -> None:
    fresh = -300 < offset < 300
    count_case(f"{prefix}, mutation={mutation}, {'fresh' if fresh else 'stale'}")
    now = time.time()
    timestamp = int(now) + offset
    headers = {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(timestamp),
        f"{prefix}-signature": lib_signature(secret, msg_id, timestamp, body),
    }
    body, headers, held_secret = mutate(mutation, body, headers, secret, data)
    ours = ours_accept(body, headers, held_secret, now)
    assert ours == library_accepts(SvixWebhook, body, headers, held_secret)
    if prefix == "webhook":  # standardwebhooks reads webhook-* names only
        assert ours == library_accepts(Webhook, body, headers, held_secret)
    assert ours == (mutation in _ACCEPTED and fresh)
