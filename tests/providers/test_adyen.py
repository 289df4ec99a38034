"""Adyen: HMAC signature per notification item, derived event ids, ``[accepted]``.

Notifications come from the samples (``payhook/samples/adyen``, as recorded), signed here.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from Adyen.util import generate_notification_sig, is_valid_hmac_notification
from hypothesis import event as label
from hypothesis import given, settings
from hypothesis import strategies as st

from payhook.core.ledger import PaymentStatus, derive
from payhook.core.model import IngestOutcome, StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.adyen import (
    MAX_BODY_BYTES,
    MAX_NOTIFICATION_ITEMS,
    AdyenProvider,
    adyen_signature,
    decode_hmac_key,
    signing_string,
)
from payhook.providers.base import ProviderConfig, iso_timestamp
from tests.conftest import FakeClock, load_sample

# The key the tests sign the samples with.
FIXTURE_KEY = "9F3C2A6D81B4E07755C1A9E03D6B2F48A1C7E5D3092B6F4E8A7D1C0B5E3F2A69"
OTHER_KEY = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"

# Published vector (PROVIDERS.md; Adyen Python SDK test_notification_request_item_hmac).
VECTOR_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
VECTOR_ITEM: dict[str, Any] = {
    "pspReference": "7914073381342284",
    "merchantReference": "TestPayment-1407325143704",
    "merchantAccountCode": "TestMerchant",
    "amount": {"currency": "EUR", "value": 1130},
    "eventCode": "AUTHORISATION",
    "success": "true",
    "eventDate": "2019-05-06T17:15:34.121+02:00",
    "operations": ["CANCEL", "CAPTURE", "REFUND"],
    "paymentMethod": "visa",
}
VECTOR_STRING = (
    "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
)
VECTOR_SIGNATURE = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="

# Signed by Adyen's test platform (Adyen Python SDK test/mocks/util/*_notification.json).
SDK_MOCK_KEY = "74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"
SDK_MOCK_ITEMS = [
    ("M8NB66SBZSGLNK82", ":slashes are fun", "2EQYm7YJpKO4EtHSPu55SQTyWf8dkW5u2nD1tJFpViA="),
    ("T7FD4VM4D3RZNN82", "\\\\slashes are fun", "nIgT81gaB5oJpn2jPXupDq68iRo2wUlBsuYjtYfwKqo="),
]


def make(*secrets: str, clock: FakeClock | None = None) -> AdyenProvider:
    return AdyenProvider(
        ProviderConfig("adyen", "adyen", secrets or (FIXTURE_KEY,)), clock or FakeClock()
    )


def delivery(*items: dict[str, Any]) -> WebhookRequest:
    body = {"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in items]}
    return WebhookRequest(json.dumps(body).encode(), {"content-type": "application/json"})


def signed(item: dict[str, Any], key: str = FIXTURE_KEY) -> dict[str, Any]:
    item = copy.deepcopy(item)
    additional = item.setdefault("additionalData", {})
    additional["hmacSignature"] = adyen_signature(decode_hmac_key(key), item)
    return item


def sample_item(event_code: str, key: str = FIXTURE_KEY, **values: object) -> dict[str, Any]:
    """The recorded sample of ``event_code``, its placeholders as recorded or as given, signed
    with ``key``."""
    [wrapper] = json.loads(load_sample("adyen", event_code, **values))["notificationItems"]
    return signed(wrapper["NotificationRequestItem"], key)


#: Two authorisations in one request (USD, then zero-decimal JPY).
BATCH = [
    dict(payment="B1Q7ZK4XR9LMN282", amount=2599, currency="USD"),
    dict(payment="B2W8XL5YS0MPQ382", amount=5000, currency="JPY"),
]


def batch_items() -> list[dict[str, Any]]:
    return [sample_item("AUTHORISATION", **values) for values in BATCH]


def batch_body() -> bytes:
    """The batch as a person writes it: indented."""
    wrapped = [{"NotificationRequestItem": item} for item in batch_items()]
    return json.dumps({"live": "false", "notificationItems": wrapped}, indent=2).encode()


def stored(provider: AdyenProvider, event: VerifiedEvent) -> StoredWebhook:
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


def test_signing_string_and_signature_match_published_vector() -> None:
    assert signing_string(VECTOR_ITEM) == VECTOR_STRING.encode()
    assert adyen_signature(decode_hmac_key(VECTOR_KEY), VECTOR_ITEM) == VECTOR_SIGNATURE


def test_accepts_delivery_of_published_vector() -> None:
    item = dict(VECTOR_ITEM, additionalData={"hmacSignature": VECTOR_SIGNATURE})
    [event] = make(VECTOR_KEY).verify(delivery(item))
    assert event.event_type == "AUTHORISATION"
    assert event.occurred_at == 1557155734.121


@pytest.mark.parametrize(("psp", "reference", "signature"), SDK_MOCK_ITEMS)
def test_accepts_items_signed_by_adyen_with_colons_and_backslashes(
    psp: str, reference: str, signature: str
) -> None:
    item = {
        "additionalData": {"hmacSignature": signature, "authCode": "039404"},
        "amount": {"currency": "EUR", "value": 1000},
        "eventCode": "AUTHORISATION",
        "merchantAccountCode": "AntoniStroinski",
        "merchantReference": reference,
        "pspReference": psp,
        "success": "true",
    }
    assert [e.event_type for e in make(SDK_MOCK_KEY).verify(delivery(item))] == ["AUTHORISATION"]


# failure modes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("pspReference",), "QFQTPCQ8HXSKGK83"),
        (("originalReference",), "QFQTPCQ8HXSKGK83"),
        (("merchantAccountCode",), "OtherMerchant"),
        (("merchantReference",), "order-6736"),
        (("amount", "value"), 100000),
        (("amount", "currency"), "USD"),
        (("eventCode",), "REFUND"),
        (("success",), "false"),
    ],
)
def test_rejects_item_with_a_tampered_signed_field(path: tuple[str, ...], value: object) -> None:
    item = sample_item("CAPTURE")
    target = item
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(VerificationError, match="no Adyen hmacSignature matches"):
        make().verify(delivery(item))


def test_fields_outside_the_signed_string_are_not_authenticated() -> None:
    # Adyen signs eight fields only: eventDate, reason and additionalData can change unnoticed.
    # This is why occurred_at (from eventDate) is a hint for ordering and nothing more.
    item = sample_item("CAPTURE")
    item["eventDate"] = "2031-01-01T00:00:00+00:00"
    item["reason"] = "changed"
    [event] = make().verify(delivery(item))
    assert event.occurred_at == 1924992000.0


@pytest.mark.parametrize(
    "additional",
    [None, {}, {"hmacSignature": ""}, {"hmacSignature": 12}, "hmacSignature"],
    ids=["no additionalData", "no hmacSignature", "empty", "not a string", "not an object"],
)
def test_rejects_item_without_usable_signature(additional: object) -> None:
    item = sample_item("AUTHORISATION")
    item["additionalData"] = additional
    with pytest.raises(VerificationError):
        make().verify(delivery(item))


def test_rejects_signature_that_is_not_ascii() -> None:
    item = sample_item("AUTHORISATION")
    item["additionalData"]["hmacSignature"] = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0\u00e9"
    with pytest.raises(VerificationError, match="not base64"):
        make().verify(delivery(item))


def test_rejects_whole_request_when_one_item_fails() -> None:
    good, second = batch_items()
    second["amount"]["value"] += 1
    with pytest.raises(VerificationError):
        make().verify(delivery(good, second))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[]",
        b'{"live": "false"}',
        b'{"notificationItems": []}',
        b'{"notificationItems": {}}',
        b'{"notificationItems": [42]}',
        b'{"notificationItems": [{"Other": {}}]}',
        b"[" * 100_000,
        b'{"notificationItems": [{"NotificationRequestItem": {"amount": {"value": '
        + b"9" * 5000
        + b"}}}]}",
    ],
    ids=[
        "empty",
        "not json",
        "not utf-8",
        "array",
        "no items",
        "empty items",
        "items not a list",
        "item not an object",
        "no NotificationRequestItem",
        "deeply nested",
        "integer past the digit limit",
    ],
)
def test_rejects_malformed_body(body: bytes) -> None:
    with pytest.raises(VerificationError):
        make().verify(WebhookRequest(body, {}))


@pytest.mark.parametrize(
    "body",
    [
        b'{"notificationItems": [{"NotificationRequestItem": {"reason": "\xff"}}]}',
        b'{"notificationItems": [{"NotificationRequestItem": {"reason": "\xed\xa0\x80"}}]}',
        b'{"notificationItems": [{"NotificationRequestItem": {}}]} extra',
        b'{"notificationItems": [{"NotificationRequestItem": {"amount": {"value": 1e999}}}]}',
        b'{"notificationItems": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
    ],
    ids=["invalid utf-8", "utf-8 of a surrogate", "extra data", "infinite amount", "nested"],
)
def test_every_malformed_body_is_a_verification_error(body: bytes) -> None:
    with pytest.raises(VerificationError):
        make().verify(WebhookRequest(body, {}))


def test_rejects_signed_field_with_lone_surrogate() -> None:
    body = (
        b'{"notificationItems": [{"NotificationRequestItem": {"pspReference": "\\ud800",'
        b' "additionalData": {"hmacSignature": "AAAA"}}}]}'
    )
    with pytest.raises(VerificationError, match="not valid text"):
        make().verify(WebhookRequest(body, {}))


@pytest.mark.parametrize("value", [True, 1.5, ["true"], {"v": 1}])
def test_rejects_signed_field_of_a_type_adyen_never_sends(value: object) -> None:
    item = sample_item("AUTHORISATION")
    item["success"] = value
    with pytest.raises(VerificationError, match="unexpected type"):
        make().verify(delivery(item))


def test_rejects_amount_that_is_not_an_object() -> None:
    item = sample_item("AUTHORISATION")
    item["amount"] = 1000
    with pytest.raises(VerificationError, match="amount is not an object"):
        make().verify(delivery(item))


# bounded work before authentication ----------------------------------------------------


def test_rejects_more_items_than_adyen_sends_before_verifying_any() -> None:
    item = sample_item("AUTHORISATION")
    # Every item is authentic: only the count can reject it, and it does before any item
    # is checked (a badly signed first item does not change the reason).
    with pytest.raises(VerificationError, match=f"more than the {MAX_NOTIFICATION_ITEMS}"):
        make().verify(delivery(*[item] * (MAX_NOTIFICATION_ITEMS + 1)))
    forged = signed(item, OTHER_KEY)
    with pytest.raises(VerificationError, match=f"more than the {MAX_NOTIFICATION_ITEMS}"):
        make().verify(delivery(forged, *[item] * MAX_NOTIFICATION_ITEMS))


def test_accepts_as_many_items_as_adyen_sends() -> None:
    # Adyen documents up to six NotificationRequestItems (SOAP; JSON and HTTP POST carry one).
    items = [
        signed(dict(VECTOR_ITEM, pspReference=f"PSP{i:013d}"))
        for i in range(MAX_NOTIFICATION_ITEMS)
    ]
    assert len(items) == 6
    events = make().verify(delivery(*items))
    assert [e.event_id.split(":")[0] for e in events] == [i["pspReference"] for i in items]


def test_stops_at_the_first_item_that_fails() -> None:
    forged = signed(sample_item("CAPTURE"), OTHER_KEY)
    # What follows would fail for other reasons: the first item's failure is the one named.
    body = {
        "notificationItems": [
            {"NotificationRequestItem": forged},
            {"NotificationRequestItem": 0},
            {"Other": {}},
            42,
            {"NotificationRequestItem": {}},
            {"NotificationRequestItem": sample_item("AUTHORISATION")},
        ]
    }
    assert len(body["notificationItems"]) == MAX_NOTIFICATION_ITEMS
    with pytest.raises(VerificationError, match="no Adyen hmacSignature matches"):
        make().verify(WebhookRequest(json.dumps(body).encode(), {}))


def test_an_unsigned_body_of_many_tiny_items_is_rejected_by_its_count() -> None:
    body = b'{"notificationItems":[' + b",".join([b"0"] * 30_000) + b"]}"
    assert len(body) <= MAX_BODY_BYTES
    with pytest.raises(VerificationError, match="30000 notificationItems"):
        make().verify(WebhookRequest(body, {}))


def test_a_body_larger_than_any_notification_is_413_before_it_is_parsed() -> None:
    from payhook.service.ingest import Ingest, PreparedDelivery

    ingest = Ingest({"adyen": make()})
    body = delivery(sample_item("CAPTURE")).body  # authentic
    padded = body + b" " * (MAX_BODY_BYTES - len(body))  # trailing whitespace: same JSON
    assert isinstance(ingest.prepare("adyen", WebhookRequest(padded, {})), PreparedDelivery)
    forged = b'{"notificationItems":[' + b",".join([b"[[[[]]]]"] * 200_000) + b"]}"
    for too_large in (padded + b" ", forged):
        answer = ingest.prepare("adyen", WebhookRequest(too_large, {}))
        assert not isinstance(answer, PreparedDelivery)
        assert answer.status == 413
        assert json.loads(answer.body)["reason"] == f"the body limit is {MAX_BODY_BYTES} bytes"


@pytest.mark.parametrize("key", ["", "abc", "zz" * 32, "44 78"], ids=["empty", "odd", "z", "space"])
def test_rejects_key_that_is_not_hex_at_configuration(key: str) -> None:
    with pytest.raises(ConfigError):
        decode_hmac_key(key)


def test_absent_and_null_fields_sign_as_empty_strings() -> None:
    # Adyen's documented rule. The Python SDK signs null as "None" and cannot sign an item
    # without amount (KeyError); both are outside its agreement test below.
    item: dict[str, Any] = {
        "pspReference": "P1",
        "eventCode": "REPORT_AVAILABLE",
        "success": "true",
    }
    assert signing_string(item) == b"P1::::::REPORT_AVAILABLE:true"
    with_nulls = dict(item, originalReference=None, amount={"value": None, "currency": None})
    assert signing_string(with_nulls) == signing_string(item)
    assert len(make().verify(delivery(signed(item)))) == 1


def test_authentic_item_without_psp_reference_is_a_payload_error() -> None:
    item = signed({"eventCode": "AUTHORISATION", "success": "true"})
    with pytest.raises(PayloadError, match="pspReference"):
        make().verify(delivery(item))


# events, ids, acknowledgement -------------------------------------------------------------


def test_each_item_of_a_batch_is_its_own_event() -> None:
    events = make().verify(WebhookRequest(batch_body(), {}))
    assert [e.event_id.split(":")[0] for e in events] == ["B1Q7ZK4XR9LMN282", "B2W8XL5YS0MPQ382"]
    assert [json.loads(e.payload)["amount"] for e in events] == [
        {"currency": "USD", "value": 2599},
        {"currency": "JPY", "value": 5000},
    ]


def test_event_id_depends_only_on_identity_fields() -> None:
    item = sample_item("REFUND")
    [base] = make().verify(delivery(item))
    reordered = json.loads(json.dumps(item, sort_keys=True, indent=4))
    reordered["eventDate"] = "2024-03-09T00:00:00+01:00"  # not part of the identity
    [same] = make().verify(delivery(reordered))
    assert same.event_id == base.event_id
    [failed] = make().verify(delivery(signed(dict(item, success="false"))))
    [other] = make().verify(delivery(signed(dict(item, originalReference="JD8K2M4XQ7VZRL82"))))
    assert len({base.event_id, failed.event_id, other.event_id}) == 3


def canonical(item: object) -> bytes:
    """An item as payhook stores it: compact, ASCII-only JSON, keys in the order sent."""
    return json.dumps(item, separators=(",", ":")).encode()


def test_each_item_is_stored_as_its_canonical_json() -> None:
    events = make().verify(WebhookRequest(batch_body(), {}))  # indented
    assert [e.payload for e in events] == [canonical(i) for i in batch_items()]


def test_an_item_stores_as_the_same_bytes_however_the_body_spells_it() -> None:
    data = json.loads(batch_body())
    spellings = [
        json.dumps(data).encode(),
        json.dumps(data, indent=4, ensure_ascii=False).encode(),
        json.dumps(data, separators=(",", ":")).encode(),
    ]
    stored = [
        [(e.event_id, e.payload) for e in make().verify(WebhookRequest(b, {}))] for b in spellings
    ]
    assert stored[0] == stored[1] == stored[2]
    assert [i for i, _ in stored[0]] == FIXTURE_IDS["batch"]


def test_an_unsigned_field_with_a_lone_surrogate_is_stored_as_its_escape() -> None:
    item = sample_item("CAPTURE")
    item["reason"] = "\ud800"  # not signed, so the item still verifies
    [event] = make().verify(delivery(item))
    assert b'"reason":"\\ud800"' in event.payload
    assert event.payload.decode("ascii")  # pure ASCII: always storable
    assert json.loads(event.payload) == item


# Ids of these notifications as the previous implementation (which re-encoded each item)
# derived them: a delivery keeps its event ids, so a redelivery stays a duplicate.
FIXTURE_IDS = {
    "AUTHORISATION": ["QFQTPCQ8HXSKGK82:8bdf3f0f0d0acc81964b"],
    "batch": [
        "B1Q7ZK4XR9LMN282:ad191997699a96c8d9ca",
        "B2W8XL5YS0MPQ382:20d226e6f4df1e3e6621",
    ],
    "CHARGEBACK_REVERSED": ["DSP9Q2X7KLM4ZR82:b927adcadf039f60118d"],
    "REFUND_FAILED": ["R8KZQ3J6FWP2DH82:e1c3369575439d94a3c3"],
}


@pytest.mark.parametrize(("name", "ids"), FIXTURE_IDS.items())
def test_event_ids_are_those_derived_before(name: str, ids: list[str]) -> None:
    items = batch_items() if name == "batch" else [sample_item(name)]
    assert [e.event_id for e in make().verify(delivery(*items))] == ids


def test_acknowledges_with_accepted_as_plain_text() -> None:
    response = make().acknowledge([IngestOutcome("wh_1", "P:1", duplicate=False)])
    assert (response.status, response.body, response.media_type) == (
        200,
        b"[accepted]",
        "text/plain",
    )


# payment events ---------------------------------------------------------------------------

AUTH = "QFQTPCQ8HXSKGK82"


@pytest.mark.parametrize(
    ("code", "success", "kind", "payment_id", "amount", "refund_id", "dispute_id"),
    [
        ("AUTHORISATION", "true", K.AUTHORIZED, AUTH, 1000, None, None),
        ("AUTHORISATION", "false", K.FAILED, AUTH, 1000, None, None),
        ("CAPTURE", "true", K.SUCCEEDED, AUTH, 1000, None, None),
        ("CAPTURE_FAILED", "true", K.FAILED, AUTH, 1000, None, None),
        ("REFUND", "true", K.REFUNDED, AUTH, 400, "R8KZQ3J6FWP2DH82", None),
        ("CANCELLATION", "true", K.CANCELED, "JD8K2M4XQ7VZRL82", 1000, None, None),
        ("CHARGEBACK", "true", K.DISPUTE_OPENED, AUTH, 1000, None, "DSP9Q2X7KLM4ZR82"),
        ("CHARGEBACK_REVERSED", "true", K.DISPUTE_WON, AUTH, 1000, None, "DSP9Q2X7KLM4ZR82"),
    ],
)
def test_maps_notification_to_payment_event(
    code: str,
    success: str,
    kind: K,
    payment_id: str,
    amount: int,
    refund_id: str | None,
    dispute_id: str | None,
) -> None:
    provider = make()
    [event] = provider.verify(delivery(sample_item(code, success=success)))
    [payment] = provider.payment_events(stored(provider, event))
    assert (payment.kind, payment.payment_id, payment.amount, payment.currency) == (
        kind,
        payment_id,
        amount,
        "EUR",
    )
    assert (payment.refund_id, payment.dispute_id) == (refund_id, dispute_id)
    assert payment.occurred_at == event.occurred_at


@pytest.mark.parametrize(
    ("code", "success"), [("REFUND_FAILED", "true"), ("REFUND", "false")], ids=["failed", "false"]
)
def test_notification_without_ledger_effect_maps_to_nothing(code: str, success: str) -> None:
    provider = make()
    [event] = provider.verify(delivery(sample_item(code, success=success)))
    assert provider.payment_events(stored(provider, event)) == []


def test_zero_decimal_currency_amount_stays_in_minor_units() -> None:
    provider = make()
    events = provider.verify(WebhookRequest(batch_body(), {}))
    [yen] = provider.payment_events(stored(provider, events[1]))
    assert (yen.amount, yen.currency) == (5000, "JPY")


def test_authorise_capture_refund_builds_a_partially_refunded_payment() -> None:
    provider = make()
    payment_events = []
    for code in ("REFUND", "CAPTURE", "AUTHORISATION"):  # out of order on purpose
        [event] = provider.verify(delivery(sample_item(code)))
        payment_events += provider.payment_events(stored(provider, event))
    record = derive("adyen", AUTH, payment_events)
    assert record.status is PaymentStatus.PARTIALLY_REFUNDED
    assert (record.amount_captured, record.amount_refunded) == (1000, 400)


def test_event_code_outside_payments_maps_to_nothing() -> None:
    provider = make()
    item = signed({"pspReference": "RPT1", "eventCode": "REPORT_AVAILABLE", "success": "true"})
    [event] = provider.verify(delivery(item))
    assert provider.payment_events(stored(provider, event)) == []


def test_event_date_without_offset_gives_no_provider_time() -> None:
    item = sample_item("CAPTURE")
    item["eventDate"] = "2024-03-05T11:00:12"  # unsigned field; the instant would be a guess
    [event] = make().verify(delivery(item))
    assert event.occurred_at is None


_SAMPLE_KINDS = {
    "AUTHORISATION": K.AUTHORIZED,
    "CAPTURE": K.SUCCEEDED,
    "CAPTURE_FAILED": K.FAILED,
    "REFUND": K.REFUNDED,
    "REFUND_FAILED": None,
    "CANCELLATION": K.CANCELED,
    "CHARGEBACK": K.DISPUTE_OPENED,
    "CHARGEBACK_REVERSED": K.DISPUTE_WON,
}


@pytest.mark.parametrize("event_type", AdyenProvider.sample_event_types)
def test_a_sent_sample_has_fresh_references_and_maps_to_its_kind(event_type: str) -> None:
    provider = make(clock=FakeClock(1_733_400_000))
    [recorded] = make().verify(delivery(sample_item(event_type)))
    [event] = provider.verify(provider.sample_request(event_type))
    item = json.loads(event.payload)
    assert (event.event_type, event.occurred_at) == (event_type, 1_733_400_000)
    assert event.event_id != recorded.event_id  # a new pspReference
    assert item["amount"] == json.loads(recorded.payload)["amount"]  # the recorded amount
    kinds = [p.kind for p in provider.payment_events(stored(provider, event))]
    assert kinds == [k for k in [_SAMPLE_KINDS[event_type]] if k is not None]


# agreement with the official SDK ----------------------------------------------------------

_text = st.text(max_size=30)
_items = st.fixed_dictionaries(
    {
        "pspReference": st.text(min_size=1, max_size=20),
        "eventCode": st.sampled_from(["AUTHORISATION", "CAPTURE", "REFUND"]) | _text,
        "success": st.sampled_from(["true", "false"]) | _text,
        "amount": st.fixed_dictionaries(
            {
                "value": st.integers(-(10**15), 10**15) | st.from_regex(r"\A[0-9]{1,9}\Z"),
                "currency": st.sampled_from(["EUR", "JPY", "KWD"]) | _text,
            }
        ),
    },
    optional={
        "originalReference": _text,
        "merchantAccountCode": _text,
        "merchantReference": _text,
        "eventDate": _text,
        "reason": _text,
    },
)
_keys = st.binary(min_size=1, max_size=64).map(bytes.hex) | st.binary(min_size=32, max_size=32).map(
    lambda b: b.hex().upper()
)
_SIGNED = ["pspReference", "originalReference", "merchantAccountCode", "merchantReference"]


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


@st.composite
def _notification_items(draw: st.DrawFn, key: str) -> dict[str, Any]:
    """An item whose signature is valid, tampered, from another key or garbage."""
    item = draw(_items)
    mode = draw(st.sampled_from(["valid", "tampered", "wrong key", "garbage", "near miss"]))
    if mode == "garbage":
        signature: object = draw(st.text(max_size=60) | st.integers())
    else:
        signing_key = draw(_keys) if mode == "wrong key" else key
        signature = generate_notification_sig(item, signing_key).decode()
        if mode == "near miss":
            signature = draw(st.sampled_from(_variants(signature)))
    item["additionalData"] = {"hmacSignature": signature}
    if mode == "tampered":
        field = draw(st.sampled_from([*_SIGNED, "value", "currency", "eventCode", "success"]))
        if field in ("value", "currency"):
            item["amount"][field] = draw(_text)
        else:
            item[field] = draw(_text)
    return item


def _sdk_accepts(item: dict[str, Any], key: str) -> bool:
    try:
        return bool(is_valid_hmac_notification(item, key))
    except (ValueError, KeyError, TypeError):  # the SDK's ways of saying "no"
        return False


def _payhook_accepts(provider: AdyenProvider, items: list[dict[str, Any]]) -> bool:
    try:
        provider.verify(delivery(*items))
    except VerificationError:
        return False
    except PayloadError:  # authentic, but no usable id: the signature decision was "yes"
        return True
    return True


@pytest.mark.sdk
@settings(max_examples=300, deadline=None)
@given(data=st.data(), keys=st.lists(_keys, min_size=1, max_size=2))
def test_agrees_with_adyen_sdk_on_every_item(data: st.DataObject, keys: list[str]) -> None:
    items = data.draw(st.lists(_notification_items(keys[-1]), min_size=1, max_size=3))
    expected = all(any(_sdk_accepts(item, k) for k in keys) for item in items)
    label(f"sdk accepts: {expected}")
    assert _payhook_accepts(make(*keys), items) is expected


# what is accepted is what json.loads reads ---------------------------------------------------


_IDENTITY = ("eventCode", "success", "originalReference")
_identity_values = st.text(max_size=12) | st.integers(-(10**6), 10**6) | st.none()


def reference_id(item: dict[str, Any]) -> str:
    """The event id as defined: pspReference, then a hash of the identity fields' JSON."""
    identity = [item["pspReference"], *(item.get(k) for k in _IDENTITY)]
    return (
        f"{item['pspReference']}:{hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]}"
    )


@st.composite
def _signed_items(draw: st.DrawFn) -> dict[str, Any]:
    item = draw(_items)
    for key in _IDENTITY[1:]:  # any type Adyen's scheme signs: text, whole numbers, absent
        if draw(st.booleans()):
            item[key] = draw(_identity_values)
    if draw(st.booleans()):
        item["additionalData"] = {"authCode": draw(_text)}
    return signed(item)


def _written(body: dict[str, Any], style: str, ascii_only: bool) -> bytes:
    separators = (",", ":") if style == "compact" else None
    indent = 2 if style == "indented" else None
    return json.dumps(body, ensure_ascii=ascii_only, separators=separators, indent=indent).encode()


def _outcome(body: bytes) -> object:
    try:
        events = make().verify(WebhookRequest(body, {}))
    except (PayloadError, VerificationError) as exc:
        return type(exc).__name__
    for event in events:
        assert event.payload == canonical(json.loads(event.payload))  # stored canonical
    return [(e.event_id, e.event_type, json.loads(e.payload), e.occurred_at) for e in events]


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(_signed_items(), min_size=1, max_size=3),
    extra=st.dictionaries(st.sampled_from(["live", "x", "NotificationRequestItem"]), _text),
    beside=st.dictionaries(st.sampled_from(["x", "notificationItems"]), _text),
    items_first=st.booleans(),
    style=st.sampled_from(["compact", "spaced", "indented"]),
    ascii_only=st.booleans(),
)
def test_signed_items_verify_with_their_ids_however_written(
    items: list[dict[str, Any]],
    extra: dict[str, str],
    beside: dict[str, str],
    items_first: bool,
    style: str,
    ascii_only: bool,
) -> None:
    # Members beside the items, in the body and in each wrapper, before or after them.
    wrapped = [
        {"NotificationRequestItem": i, **beside}
        if items_first
        else {**beside, "NotificationRequestItem": i}
        for i in items
    ]
    body = (
        {"notificationItems": wrapped, **extra}
        if items_first
        else {**extra, "notificationItems": wrapped}
    )
    ours = _outcome(_written(body, style, ascii_only))
    if not all(i["eventCode"] for i in items):
        assert ours == "PayloadError"  # authentic, but an item has no usable event type
        return
    assert ours == [
        (reference_id(i), i["eventCode"], i, iso_timestamp(i.get("eventDate"), naive_as_utc=False))
        for i in items
    ]


@settings(max_examples=300, deadline=None)
@given(items=st.lists(_signed_items(), min_size=1, max_size=2), data=st.data())
def test_what_is_accepted_depends_only_on_what_json_loads_reads(
    items: list[dict[str, Any]], data: st.DataObject
) -> None:
    body = delivery(*items).body
    cut = data.draw(st.integers(0, len(body)))
    junk = data.draw(st.sampled_from([b"", b"}", b"]", b",", b'"', b" ", b"{"]))
    body = body[:cut] + junk + body[cut + data.draw(st.integers(0, 2)) :]
    try:
        decoded = json.loads(body)
    except ValueError:
        label("invalid JSON")
        assert _outcome(body) == "VerificationError"
        return
    ours = _outcome(body)
    label(ours if isinstance(ours, str) else "accepted")
    assert ours == _outcome(json.dumps(decoded).encode())
