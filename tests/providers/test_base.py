"""Shared verifier helpers: prepared HMAC keys, constant-time matching, JSON bodies, times."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from payhook.errors import ConfigError, PayloadError
from payhook.providers.base import (
    HmacKeys,
    ProviderConfig,
    any_signature_matches,
    iso_timestamp,
    parse_json_object,
)

# --- HMAC with prepared keys --------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.binary(max_size=150), max_size=3),  # around the 64-byte block size
    prefix=st.binary(max_size=80),
    message=st.binary(max_size=300),
)
def test_prepared_keys_give_the_hmac_of_prefix_and_message_under_each_key(
    keys: list[bytes], prefix: bytes, message: bytes
) -> None:
    prepared = HmacKeys(keys, prefix)
    expected = [hmac.digest(key, prefix + message, hashlib.sha256) for key in keys]
    assert prepared.digests(message) == expected
    assert prepared.hexdigests(message) == [mac.hex() for mac in expected]
    # The prepared states are copied, never consumed: the same answer every time.
    assert prepared.digests(message) == expected
    assert len(prepared) == len(keys)


def test_prepared_keys_match_rfc_4231_test_cases_2_and_6() -> None:
    keys = HmacKeys([b"Jefe", b"\xaa" * 131])
    assert keys.hexdigests(b"what do ya want for nothing?")[0] == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert keys.hexdigests(b"Test Using Larger Than Block-Size Key - Hash Key First")[1] == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    )


def test_prepared_keys_of_secrets_are_their_utf8_bytes_in_order() -> None:
    keys = HmacKeys.of_secrets(ProviderConfig("p", "gocardless", ("first", "s\u00e9cond")), b"url:")
    assert keys.digests(b"body") == [
        hmac.digest(b"first", b"url:body", hashlib.sha256),
        hmac.digest("s\u00e9cond".encode(), b"url:body", hashlib.sha256),
    ]


def test_a_secret_that_is_not_utf8_text_is_a_config_error_that_does_not_show_it() -> None:
    with pytest.raises(ConfigError, match=r"providers\.p\.secrets") as raised:
        HmacKeys.of_secrets(ProviderConfig("p", "gocardless", ("ok", "bad\ud800secret")))
    assert "bad" not in str(raised.value)


# --- constant-time matching ---------------------------------------------------------------

signatures = st.one_of(
    st.binary(max_size=6),
    st.text(alphabet="abc", max_size=6),
    st.text(max_size=6),  # non-ASCII text too: compare_digest refuses it, matching must not
)


def as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


@settings(max_examples=400, deadline=None)
@given(
    expected=st.lists(signatures, min_size=1, max_size=3),
    received=st.lists(signatures, min_size=1, max_size=3),
)
def test_matches_when_any_received_signature_equals_any_expected_one(
    expected: list[bytes | str], received: list[bytes | str]
) -> None:
    reference = any(as_bytes(e) == as_bytes(r) for e in expected for r in received)
    event(f"{len(expected)}x{len(received)}, match={reference}")
    assert any_signature_matches(expected, received) is reference


@pytest.mark.parametrize(
    ("expected", "received", "matches"),
    [
        (b"abc", b"abc", True),
        ("abc", "abc", True),
        (b"abc", "abc", True),  # text and bytes compare as UTF-8
        ("abc", b"abd", False),
        ("ab\u00e9", "ab\u00e9", True),  # non-ASCII text: compared as bytes, no TypeError
        ("abc", "ab\u00e9", False),
        ("abc", "ab\ud800", False),  # a lone surrogate from a header compares unequal
    ],
)
def test_one_expected_and_one_received_signature(
    expected: bytes | str, received: bytes | str, matches: bool
) -> None:
    assert any_signature_matches([expected], [received]) is matches


# --- JSON bodies --------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_bodies = st.builds(
    lambda value, indent, ascii_only, after: (
        json.dumps(value, indent=indent, ensure_ascii=ascii_only) + after
    ).encode(),
    st.dictionaries(st.text(max_size=5), json_values, max_size=4) | json_values,
    st.sampled_from([None, 1]),
    st.booleans(),
    st.sampled_from(["", " ", "\n", " x", "}", "{}"]),
)


def json_loads_outcome(body: bytes) -> Any:
    try:
        data = json.loads(body)
    except ValueError:
        return "invalid"
    return data if isinstance(data, dict) else "not an object"


@settings(max_examples=400, deadline=None)
@given(body=json_bodies)
def test_parse_json_object_accepts_what_json_loads_reads_as_an_object(body: bytes) -> None:
    expected = json_loads_outcome(body)
    event(expected if isinstance(expected, str) else "object")
    try:
        ours: Any = parse_json_object(body)
    except PayloadError as exc:
        ours = "not an object" if "must be a JSON object" in str(exc) else "invalid"
    assert ours == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a":1} x', "Extra data"),
        (b'{"a":1', "Expecting"),
        (b"", "Expecting value"),
        (b'{"a":"\xff"}', "UnicodeDecodeError"),
        (b'[{"a":1}]', "must be a JSON object, got list"),
    ],
)
def test_parse_json_object_says_why_a_body_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_json_object(body)


def test_parse_json_object_reads_utf16_and_a_bom_as_json_loads_does() -> None:
    for body in ['{"a": "\u00e9"}'.encode("utf-16"), b'\xef\xbb\xbf{"a": 1}', b' {"a": 1}']:
        assert parse_json_object(body) == json.loads(body)


# --- event times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "naive_as_utc", "expected"),
    [
        ("2026-01-12T09:00:03.125Z", True, 1768208403.125),
        ("2026-01-12T10:00:03.125+01:00", False, 1768208403.125),
        ("2026-01-12T09:00:03", True, 1768208403.0),
        ("2026-01-12T09:00:03", False, None),
        ("yesterday", True, None),
        (1768208403, True, None),
        (None, True, None),
    ],
)
def test_iso_timestamp(value: object, naive_as_utc: bool, expected: float | None) -> None:
    assert iso_timestamp(value, naive_as_utc=naive_as_utc) == expected
