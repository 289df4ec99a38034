"""Minor units with ISO 4217 exponents, never floats."""

from __future__ import annotations

import pytest

from payhook.core.money import exponent, format_minor, major_to_minor, minor_amount
from payhook.errors import PayloadError


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("10.50", "USD", 1050),
        ("10.5", "eur", 1050),
        ("0.01", "USD", 1),
        ("1000", "JPY", 1000),
        ("1.234", "KWD", 1234),
        ("19.99", "GBP", 1999),
        ("0", "USD", 0),
        (7, "USD", 700),
        ("123456789012.34", "USD", 12345678901234),
    ],
)
def test_converts_major_unit_strings_exactly(value: object, currency: str, expected: int) -> None:
    assert major_to_minor(value, currency) == expected


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        (10.5, "USD"),  # a float cannot carry money exactly
        ("10.555", "USD"),
        ("1.5", "JPY"),
        ("ten", "USD"),
        ("1e3", "USD"),
        ("", "USD"),
        (None, "USD"),
        (True, "USD"),
        ("10.00", "US"),
        ("10.00", "U5D"),
    ],
)
def test_rejects_inexact_or_malformed_amounts(value: object, currency: str) -> None:
    with pytest.raises(PayloadError):
        major_to_minor(value, currency)


def test_exponents_follow_iso_4217() -> None:
    assert (exponent("USD"), exponent("JPY"), exponent("KWD"), exponent("CLF")) == (2, 0, 3, 4)


def test_minor_amount_accepts_integers_and_digit_strings_only() -> None:
    assert minor_amount(2000) == 2000
    assert minor_amount("2000") == 2000
    for bad in (20.0, "20.00", None, False, "x"):
        with pytest.raises(PayloadError):
            minor_amount(bad)


def test_formats_for_people() -> None:
    assert format_minor(1050, "usd") == "10.50 USD"
    assert format_minor(1000, "JPY") == "1000 JPY"
    assert format_minor(1234, "KWD") == "1.234 KWD"
