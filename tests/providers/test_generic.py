"""The generic HMAC provider, configured from TOML alone.

Each scheme is checked against a bare reference implementation written out in this file
(Shopify-style base64, GitHub-style prefixed hex, a Slack-style timestamped scheme), then a
property test generates schemes, bodies and secrets and compares accept/reject decisions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string
import tomllib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payhook.config import parse_settings
from payhook.core.model import WebhookRequest
from payhook.core.payment import PaymentEventKind
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers import build_providers
from payhook.providers.base import ProviderConfig
from payhook.providers.generic import GenericHmacProvider
from payhook.service.ingest import Ingest
from tests.conftest import FakeClock, load_event

K = PaymentEventKind
SECRET = "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"
OTHER_SECRET = "rotated_secret_0042"
NOW = 1_718_900_471

# Hypothesis examples for the reference-agreement test (reported in the README table).
REFERENCE_AGREEMENT_CASES = 200

SHOPIFY_TOML = f"""
[providers.shop]
type = "generic"
secrets = ["{SECRET}"]
signature_header = "X-Shopify-Hmac-SHA256"
encoding = "base64"
event_id_header = "X-Shopify-Webhook-Id"
event_type_header = "X-Shopify-Topic"
unsigned_identity = true
payment_id_path = "id"
amount_path = "total_price"
currency_path = "currency"
amount_units = "major"

[providers.shop.kinds]
"orders/paid" = "succeeded"
"orders/cancelled" = "canceled"
"""

GITHUB_TOML = f"""
[providers.gh]
type = "generic"
secrets = ["{OTHER_SECRET}", "{SECRET}"]
signature_header = "X-Hub-Signature-256"
signature_prefix = "sha256="
event_id_header = "X-GitHub-Delivery"
event_type_header = "X-GitHub-Event"
unsigned_identity = true
"""

SLACK_TOML = f"""
[providers.slack]
type = "generic"
secrets = ["{SECRET}"]
tolerance_seconds = 300
signature_header = "X-Slack-Signature"
signature_prefix = "v0="
timestamp_header = "X-Slack-Request-Timestamp"
signed_content = "v0:{{timestamp}}:{{body}}"
event_id_path = "event_id"
event_type_path = "event.type"
"""


def from_toml(text: str, clock: FakeClock | None = None) -> GenericHmacProvider:
    providers = build_providers(parse_settings(tomllib.loads(text)).providers, clock or FakeClock())
    [provider] = providers.values()
    assert isinstance(provider, GenericHmacProvider)
    return provider


def mac(secret: str, content: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), content, getattr(hashlib, algorithm)).digest()


# -- reference implementations of three real schemes ---------------------------------------


def shopify_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(mac(secret, body)).decode()


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + mac(secret, body).hex()


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "v0=" + mac(secret, b"v0:" + timestamp.encode() + b":" + body).hex()


SHOPIFY_BODY = load_event("generic", "shopify_orders_paid.json")
GITHUB_BODY = load_event("generic", "github_sponsorship_created.json")
SLACK_BODY = load_event("generic", "slack_event_callback.json")


def shopify_request(body: bytes = SHOPIFY_BODY, topic: str = "orders/paid") -> WebhookRequest:
    return WebhookRequest(
        body=body,
        headers={
            "x-shopify-hmac-sha256": shopify_signature(SECRET, body),
            "x-shopify-topic": topic,
            "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        },
    )


def slack_request(timestamp: int = NOW, signed_timestamp: int | None = None) -> WebhookRequest:
    signed = str(timestamp if signed_timestamp is None else signed_timestamp)
    return WebhookRequest(
        body=SLACK_BODY,
        headers={
            "x-slack-signature": slack_signature(SECRET, signed, SLACK_BODY),
            "x-slack-request-timestamp": str(timestamp),
        },
    )


def test_shopify_style_base64_scheme_agrees_with_the_reference() -> None:
    [event] = from_toml(SHOPIFY_TOML).verify(shopify_request())
    assert (event.event_id, event.event_type) == (
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "orders/paid",
    )
    assert (event.payload, event.occurred_at) == (SHOPIFY_BODY, None)


def test_shopify_style_maps_major_unit_amounts_to_payments() -> None:
    provider = from_toml(SHOPIFY_TOML)
    [webhook] = Ingest({"shop": provider}).verify("shop", shopify_request())
    [event] = provider.payment_events(webhook)
    assert (event.kind, event.payment_id, event.amount, event.currency) == (
        K.SUCCEEDED,
        "5794561032346",
        5100,
        "USD",
    )
    [other] = Ingest({"shop": provider}).verify("shop", shopify_request(topic="orders/create"))
    assert provider.payment_events(other) == []


def test_a_missing_event_id_header_is_a_payload_error() -> None:
    delivery = shopify_request()
    del delivery.headers["x-shopify-webhook-id"]
    with pytest.raises(PayloadError, match="x-shopify-webhook-id"):
        from_toml(SHOPIFY_TOML).verify(delivery)


def test_github_style_prefixed_hex_scheme_agrees_with_the_reference() -> None:
    provider = from_toml(GITHUB_TOML)
    headers = {"x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    headers["x-github-event"] = "sponsorship"
    for secret in (SECRET, OTHER_SECRET):  # two secrets configured: rotation
        headers["x-hub-signature-256"] = github_signature(secret, GITHUB_BODY)
        [event] = provider.verify(WebhookRequest(GITHUB_BODY, dict(headers)))
        assert (event.event_id, event.event_type) == (headers["x-github-delivery"], "sponsorship")


@pytest.mark.parametrize(
    "signature",
    [
        "",  # empty
        "sha1=" + "ab" * 20,  # another prefix
        "ab" * 32,  # no prefix
        "sha256=" + "zz" * 32,  # not hex
        "sha256=" + "ab" * 31 + "a",  # odd length
        "sha256=" + "\u00e9" * 64,  # not ASCII
    ],
)
def test_github_style_rejects_malformed_signatures(signature: str) -> None:
    delivery = WebhookRequest(GITHUB_BODY, {"x-hub-signature-256": signature})
    with pytest.raises(VerificationError):
        from_toml(GITHUB_TOML).verify(delivery)


def test_timestamped_scheme_agrees_with_the_reference() -> None:
    [event] = from_toml(SLACK_TOML, FakeClock(NOW)).verify(slack_request())
    assert (event.event_id, event.event_type, event.occurred_at) == (
        "Ev0LAN670R",
        "app_mention",
        float(NOW),
    )


def test_timestamped_scheme_rejects_a_tampered_timestamp() -> None:
    with pytest.raises(VerificationError):
        from_toml(SLACK_TOML, FakeClock(NOW)).verify(slack_request(NOW + 1, signed_timestamp=NOW))


def test_the_timestamp_is_signed_as_sent() -> None:
    # The sender signs the header's text: a leading zero is part of it (and still in time).
    delivery = slack_request()
    delivery.headers["x-slack-request-timestamp"] = f"0{NOW}"
    delivery.headers["x-slack-signature"] = slack_signature(SECRET, f"0{NOW}", SLACK_BODY)
    [event] = from_toml(SLACK_TOML, FakeClock(NOW)).verify(delivery)
    assert event.occurred_at == float(NOW)
    delivery.headers["x-slack-signature"] = slack_signature(SECRET, str(NOW), SLACK_BODY)
    with pytest.raises(VerificationError):
        from_toml(SLACK_TOML, FakeClock(NOW)).verify(delivery)


def test_whitespace_around_the_signature_is_ignored() -> None:
    delivery = shopify_request()
    signature = delivery.headers["x-shopify-hmac-sha256"]
    for spaced in (f" {signature}", f"{signature} ", f"\t{signature}\t"):
        delivery.headers["x-shopify-hmac-sha256"] = spaced
        assert from_toml(SHOPIFY_TOML).verify(delivery)


@pytest.mark.parametrize("timestamp", ["", "abc", "1718900471.0", "-5", "\uff11" * 10])
def test_timestamped_scheme_rejects_a_non_numeric_timestamp(timestamp: str) -> None:
    delivery = slack_request()
    delivery.headers["x-slack-request-timestamp"] = timestamp
    with pytest.raises(VerificationError, match="not a unix time"):
        from_toml(SLACK_TOML, FakeClock(NOW)).verify(delivery)


def test_a_template_can_sign_other_headers_and_literal_braces() -> None:
    provider = from_toml(
        f"""
        [providers.custom]
        type = "generic"
        secrets = ["{SECRET}"]
        algorithm = "sha512"
        signature_header = "X-Signature"
        signed_content = "{{{{{{header:X-Request-Id}}}}}}.{{body}}"
        """
    )
    body = b'{"type": "payment.succeeded"}'
    content = b"{req_42}." + body
    headers = {"x-request-id": "req_42", "x-signature": mac(SECRET, content, "sha512").hex()}
    assert provider.verify(WebhookRequest(body, headers))[0].event_type == "payment.succeeded"
    with pytest.raises(VerificationError):
        provider.verify(WebhookRequest(body, {**headers, "x-request-id": "req_43"}))
    del headers["x-request-id"]
    with pytest.raises(VerificationError, match="missing signed header"):
        provider.verify(WebhookRequest(body, headers))


def test_the_body_is_signed_as_raw_bytes_and_the_default_id_is_its_hash() -> None:
    provider = from_toml(
        f"""
        [providers.raw]
        type = "generic"
        secrets = ["{SECRET}"]
        algorithm = "sha1"
        encoding = "base64"
        signature_header = "X-Sig"
        event_type_header = "X-Kind"
        unsigned_identity = true
        """
    )
    body = b"\xff\xfe not UTF-8, not JSON"
    signature = base64.b64encode(mac(SECRET, body, "sha1")).decode()
    [event] = provider.verify(WebhookRequest(body, {"x-sig": signature, "x-kind": "ping"}))
    assert (event.event_id, event.event_type) == (
        "sha256:" + hashlib.sha256(body).hexdigest(),
        "ping",
    )


def test_an_authentic_body_without_json_where_paths_are_needed_is_a_payload_error() -> None:
    provider = from_toml(SLACK_TOML, FakeClock(NOW))
    body = b"token=XXYYZZ&team_id=T061EG9R6"
    signature = slack_signature(SECRET, str(NOW), body)
    headers = {"x-slack-signature": signature, "x-slack-request-timestamp": str(NOW)}
    with pytest.raises(PayloadError):
        provider.verify(WebhookRequest(body, headers))


def test_sample_requests_verify_for_every_scheme() -> None:
    for text in (SHOPIFY_TOML, GITHUB_TOML, SLACK_TOML):
        provider = from_toml(text, FakeClock(NOW))
        sample = provider.sample_request()
        assert provider.verify(sample)
    shopify = from_toml(SHOPIFY_TOML)
    sample = shopify.sample_request("orders/paid")
    assert sample.headers["x-shopify-hmac-sha256"] == shopify_signature(SECRET, sample.body)
    [webhook] = Ingest({"shop": shopify}).verify("shop", sample)
    assert shopify.payment_events(webhook)[0].amount == 2000


# -- configuration is validated at construction --------------------------------------------


def build(clock: FakeClock | None = None, **options: Any) -> GenericHmacProvider:
    config = ProviderConfig(
        "g", "generic", (SECRET,), options={"signature_header": "X-S", **options}
    )
    return GenericHmacProvider(config, clock or FakeClock())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"signature_header": None}, "signature_header: got nothing, expected str"),
        ({"signature_header": 5}, "signature_header: got 5, expected str"),
        ({"algorithm": "md5"}, "algorithm: got 'md5', expected one of sha1, sha256, sha512"),
        ({"encoding": "base32"}, "encoding: got 'base32', expected one of base64, hex"),
        (
            {"signature_heder": "X"},
            "signature_heder: unknown setting (did you mean 'signature_header'?)",
        ),
        ({"signed_content": "{ts}.{body}"}, "got placeholder {ts}"),
        ({"signed_content": "{body"}, "got a lone '{'"),
        ({"signed_content": "{header:}{body}"}, "got placeholder {header:}"),
        ({"signed_content": "{id}.{body}"}, "got placeholder {id}, expected {body}, {timestamp}"),
        ({"signed_content": "{url}{body}"}, "got placeholder {url}"),
        ({"signed_content": "{timestamp}"}, "got a template without {body}"),
        ({"signed_content": "{timestamp}.{body}"}, "got {timestamp} without timestamp_header"),
        ({"timestamp_header": "X-T"}, "got a timestamp that signed_content does not sign"),
        ({"event_id_header": "X-Id", "event_id_path": "id"}, "got both event_id_header"),
        ({"event_type_header": "X-T", "event_type_path": "t"}, "got both event_type_header"),
        ({"kinds": {"paid": "succeeded"}}, "got a payment mapping without payment_id_path"),
        ({"payment_id_path": "id"}, "got no event types"),
        (
            {"payment_id_path": "id", "kinds": {"x": "paid"}},
            "kinds[...]: expected one of pending",
        ),
        ({"payment_id_path": "id", "kinds": ["x"]}, "kinds: got a list, expected a table"),
        (
            {"payment_id_path": "id", "kinds": {"x": "succeeded"}, "amount_units": "major"},
            "amount_units: got 'major' without currency_path",
        ),
    ],
)
def test_rejects_inconsistent_options_with_got_and_expected(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(**options)


def test_a_timestamp_may_be_signed_through_a_header_placeholder() -> None:
    options = {"timestamp_header": "X-T", "signed_content": "{header:X-T}.{body}"}
    body = b'{"type": "ping"}'
    headers = {"x-t": str(NOW), "x-s": mac(SECRET, f"{NOW}.".encode() + body).hex()}
    provider = build(FakeClock(NOW), **options)
    assert provider.verify(WebhookRequest(body, headers))[0].occurred_at == float(NOW)
    with pytest.raises(VerificationError, match="older"):
        build(FakeClock(NOW + 301), **options).verify(WebhookRequest(body, headers))


# -- property: agreement with a bare reference implementation ------------------------------

_LITERALS = st.text(string.ascii_letters + string.digits + ".:-_ ", max_size=6)


@st.composite
def schemes(draw: st.DrawFn) -> dict[str, Any]:
    timestamped = draw(st.booleans())
    pieces = [draw(_LITERALS), "{body}", draw(_LITERALS)]
    if timestamped:
        pieces.insert(draw(st.sampled_from([0, 2])), "{timestamp}" + draw(_LITERALS))
    return {
        "algorithm": draw(st.sampled_from(["sha1", "sha256", "sha512"])),
        "encoding": draw(st.sampled_from(["hex", "base64"])),
        "signature_prefix": draw(st.sampled_from(["", "sha256=", "v1=", "t"])),
        "signed_content": "".join(pieces),
        "timestamped": timestamped,
    }


def reference_header(scheme: dict[str, Any], secret: str, body: bytes, timestamp: str) -> str:
    """A bare reference signer: fill the template by plain replacement, HMAC, encode."""
    content = scheme["signed_content"].encode()
    content = content.replace(b"{timestamp}", timestamp.encode()).replace(b"{body}", body)
    digest = mac(secret, content, scheme["algorithm"])
    encoded = digest.hex() if scheme["encoding"] == "hex" else base64.b64encode(digest).decode()
    return scheme["signature_prefix"] + encoded


def reference_accepts(
    scheme: dict[str, Any], secret: str, body: bytes, headers: dict[str, str], now: int
) -> bool:
    """A bare reference verifier: recompute, compare, then check the timestamp if signed."""
    if "x-sig" not in headers:
        return False
    timestamp = headers["x-ts"]
    expected = reference_header(scheme, secret, body, timestamp)
    if not hmac.compare_digest(expected.encode(), headers["x-sig"].encode()):
        return False
    return not scheme["timestamped"] or abs(int(timestamp) - now) <= 300


@settings(max_examples=REFERENCE_AGREEMENT_CASES, deadline=None)
@given(
    scheme=schemes(),
    secret=st.text(min_size=1, max_size=32),
    body=st.binary(max_size=64),
    offset=st.one_of(st.integers(-290, 290), st.integers(310, 10_000), st.integers(-10_000, -310)),
    mutation=st.sampled_from(["none", "body", "signature", "secret", "timestamp", "header"]),
    data=st.data(),
)
def test_agrees_with_a_reference_implementation_for_generated_schemes(
    scheme: dict[str, Any],
    secret: str,
    body: bytes,
    offset: int,
    mutation: str,
    data: st.DataObject,
) -> None:
    options = {k: v for k, v in scheme.items() if k != "timestamped" and v}
    options |= {
        "signature_header": "X-Sig",
        "event_type_header": "X-Kind",
        "unsigned_identity": True,
    }
    if scheme["timestamped"]:
        options["timestamp_header"] = "X-Ts"
    config = ProviderConfig("g", "generic", (secret,), options=options)
    provider = GenericHmacProvider(config, FakeClock(NOW))
    timestamp = str(NOW + offset)
    header = reference_header(scheme, secret, body, timestamp)
    headers = {"x-sig": header, "x-ts": timestamp, "x-kind": "k"}
    if mutation == "body":
        body += data.draw(st.binary(min_size=1, max_size=4))
    elif mutation == "signature":
        headers["x-sig"] = reference_header(scheme, secret + "x", body, timestamp)
    elif mutation == "secret":
        provider = GenericHmacProvider(
            ProviderConfig("g", "generic", (secret + "x",), options=options), FakeClock(NOW)
        )
    elif mutation == "timestamp":
        headers["x-ts"] = str(NOW + offset + data.draw(st.sampled_from([-1, 1])))
    elif mutation == "header":
        del headers["x-sig"]
    held = secret + "x" if mutation == "secret" else secret
    try:
        provider.verify(WebhookRequest(body, headers))
        ours = True
    except VerificationError:
        ours = False
    assert ours == reference_accepts(scheme, held, body, headers, NOW)
    timestamp_changed = mutation == "timestamp" and scheme["timestamped"]
    fresh = not scheme["timestamped"] or -300 < offset < 300
    assert ours == (mutation in ("none", "timestamp") and not timestamp_changed and fresh)
