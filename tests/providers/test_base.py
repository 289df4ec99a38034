"""Shared provider helpers: JSON bodies and times (the HMAC engine: test_hmac_engine.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from payhook.errors import PayloadError
from payhook.providers.base import iso_timestamp, parse_json_object

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
