"""The HMAC engine, scheme by scheme shape: what each listing reads, what a template signs,
how rotation and tolerance work, and that signing and verifying agree."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payhook.core.model import WebhookRequest
from payhook.errors import ConfigError, VerificationError
from payhook.providers.hmac import (
    HmacEngine,
    HmacScheme,
    OneSignature,
    OptionalPrefix,
    Pairs,
    Versioned,
    parse_template,
    whsec_key,
)
from tests.conftest import FakeClock

NOW = 1_733_400_000
SECRET = "engine_test_secret_0123456789"

SCHEMES = {
    "body": HmacScheme(header="X-Sig"),
    "prefixed base64": HmacScheme(header="X-Sig", encoding="base64", prefix="sha256="),
    "pairs": HmacScheme(
        header="X-Sig", signed="{timestamp}.{body}", listing=Pairs(",", "t", "v1", strip=True)
    ),
    "versioned": HmacScheme(
        header="X-Sig",
        signed="{id}.{timestamp}.{body}",
        listing=Versioned(),
        encoding="base64",
        compare="lenient",
        timestamp_header="X-Ts",
        id_header="X-Id",
        timestamp_first=True,
    ),
    "header template": HmacScheme(
        header="X-Sig", signed="{header:X-Account}:{url}:{body}", algorithm="sha512"
    ),
    "optional prefix": HmacScheme(header="X-Sig", listing=OptionalPrefix("sha256=")),
}


def engine(scheme: HmacScheme, *secrets: str, now: float = NOW) -> HmacEngine:
    return HmacEngine(
        scheme,
        secrets or (SECRET,),
        tolerance_seconds=300,
        clock=FakeClock(now),
        url="https://example.test/hook",
    )


def signed(
    scheme: HmacScheme, body: bytes, *, secret: str = SECRET, at: int = NOW
) -> WebhookRequest:
    headers = {"x-account": "acct_1"}
    headers |= engine(scheme, secret, now=at).sign(body, headers, timestamp=at, message_id="msg_1")
    return WebhookRequest(body, headers)


@pytest.mark.parametrize("name", SCHEMES)
@settings(max_examples=50, deadline=None)
@given(body=st.binary(max_size=200))
def test_what_the_engine_signs_it_verifies_and_a_changed_body_it_refuses(
    name: str, body: bytes
) -> None:
    scheme = SCHEMES[name]
    request = signed(scheme, body)
    engine(scheme).verify(request)
    with pytest.raises(VerificationError):
        engine(scheme).verify(WebhookRequest(body + b"x", request.headers))


def test_a_body_template_signs_exactly_the_bytes_of_the_template() -> None:
    scheme = SCHEMES["header template"]
    request = signed(scheme, b'{"a":1}')
    expected = hmac.new(
        SECRET.encode(), b'acct_1:https://example.test/hook:{"a":1}', hashlib.sha512
    ).hexdigest()
    assert request.headers["x-sig"] == expected
    headers = {**request.headers, "x-account": "acct_2"}  # a signed header changed
    with pytest.raises(VerificationError, match="no X-Sig signature matches"):
        engine(scheme).verify(WebhookRequest(b'{"a":1}', headers))


def test_any_signature_of_any_secret_matches_during_rotation() -> None:
    scheme = SCHEMES["pairs"]
    old, new = "engine_old_secret_0123456789", "engine_new_secret_0123456789"
    request = signed(scheme, b"{}", secret=new)
    with pytest.raises(VerificationError):
        engine(scheme, old).verify(request)
    assert engine(scheme, old, new).verify(request).timestamp == NOW
    # Two v1 entries, one of them right: accepted.
    wrong = signed(scheme, b"{}", secret=old).headers["x-sig"].split(",v1=")[1]
    both = {"x-sig": request.headers["x-sig"] + f",v1={wrong}"}
    assert engine(scheme, new).verify(WebhookRequest(b"{}", both))


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-301, False), (-299, True), (299, True), (301, False)]
)
def test_timestamps_are_checked_both_ways(offset: int, accepted: bool) -> None:
    scheme = SCHEMES["pairs"]
    request = signed(scheme, b"{}", at=NOW + offset)
    if accepted:
        engine(scheme).verify(request)
    else:
        with pytest.raises(VerificationError, match="timestamp"):
            engine(scheme).verify(request)


@pytest.mark.parametrize("value", ["", "abc", "-5", "+1733400000", " 1733400000", "1" * 21])
def test_a_timestamp_must_be_ascii_digits(value: str) -> None:
    header = f"t={value},v1=00"
    with pytest.raises(VerificationError):
        engine(SCHEMES["pairs"]).verify(WebhookRequest(b"{}", {"x-sig": header}))


@pytest.mark.parametrize(
    ("listing", "header", "problem"),
    [
        (Pairs(",", "t", "v1"), "v1=ab", "has no timestamp"),
        (Pairs(",", "t", "v1"), "t=1", "has no v1 signature"),
        (Pairs(";", "ts", "h1", strict=True), "ts=1;h1=ab;x=1", "unrecognised key"),
        (Pairs(";", "ts", "h1", strict=True), "ts=1;h1=a=b", "malformed entry"),
        (Versioned(), "v1", "malformed X-Sig entry"),
        (Versioned(), "v1,a,b", "malformed X-Sig entry"),
    ],
)
def test_a_malformed_header_is_a_verification_error_naming_it(
    listing: object, header: str, problem: str
) -> None:
    with pytest.raises(VerificationError, match=problem):
        listing.parse(header, "X-Sig")  # type: ignore[attr-defined]


def test_listings_read_what_providers_send() -> None:
    assert Pairs(",", "t", "v1", strip=True).parse(
        " t=5 , v1=a, x , v1=b,v0=c", "h"
    ).signatures == [
        "a",
        "b",
    ]
    assert Versioned().parse("v1,a  v1a,b v1,c", "h").signatures == ["a", "c"]
    assert OptionalPrefix("sha256=").parse("sha256=ab", "h").signatures == ["ab"]
    assert OptionalPrefix("sha256=").parse("ab", "h").signatures == ["ab"]
    assert OneSignature().parse(" ab ", "h").signatures == [" ab "]  # as sent
    assert OneSignature(strip=True).parse(" ab ", "h").signatures == ["ab"]


def test_text_comparison_is_exact_and_decoded_comparison_reads_the_encoding() -> None:
    body = b'{"a":1}'
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    text = HmacScheme(header="X-Sig")  # hex compared as sent
    with pytest.raises(VerificationError):
        engine(text).verify(WebhookRequest(body, {"x-sig": mac.hex().upper()}))
    strict = HmacScheme(header="X-Sig", compare="strict")  # hex decoded: either case
    engine(strict).verify(WebhookRequest(body, {"x-sig": mac.hex().upper()}))
    with pytest.raises(VerificationError, match="not hex"):
        engine(strict).verify(WebhookRequest(body, {"x-sig": "zz"}))
    lenient = HmacScheme(header="X-Sig", encoding="base64", compare="lenient")
    noisy = base64.b64encode(mac).decode().replace("A", "A!", 1)
    engine(lenient).verify(WebhookRequest(body, {"x-sig": noisy}))


def test_a_scheme_reading_its_timestamp_first_refuses_a_stale_one_before_any_mac() -> None:
    scheme = SCHEMES["versioned"]
    stale = signed(scheme, b"{}", at=NOW - 1000)
    tampered = {**stale.headers, "x-sig": "v1,AAAA"}  # stale AND wrong: the time is named
    with pytest.raises(VerificationError, match="older than the tolerance"):
        engine(scheme).verify(WebhookRequest(b"{}", tampered))


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{timestamp}", "without {body}"),
        ("{ts}.{body}", "got placeholder {ts}"),
        ("{body", "lone '{'"),
        ("{header:}{body}", "got placeholder {header:}"),
    ],
)
def test_a_malformed_template_is_a_config_error(template: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_template(template)


def test_literal_braces_and_headers_in_templates() -> None:
    assert parse_template("{{v}}{header:X-A}.{body}") == (
        b"{v}",
        ("header", "x-a"),
        b".",
        ("body", ""),
    )


def test_secrets_that_cannot_be_keys_are_config_errors_that_do_not_show_them() -> None:
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        engine(SCHEMES["body"], "bad\ud800secret_0123456789")
    assert "bad" not in str(caught.value)
    with pytest.raises(ConfigError, match="base64 after 'whsec_'"):
        whsec_key("whsec_not base64!")
    with pytest.raises(ConfigError, match="must not be empty"):
        whsec_key("whsec_")
