"""Amounts in integer minor units, converted with ISO 4217 exponents and never with floats."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from payhook.errors import PayloadError

# ISO 4217 currencies whose minor-unit exponent is not 2. Everything else uses 2.
_EXPONENTS: dict[str, int] = {
    # zero-decimal
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three-decimal
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four-decimal
    "CLF": 4, "UYW": 4,
}  # fmt: skip

_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


def normalize_currency(code: object) -> str:
    """Upper-case ISO 4217 alphabetic code, or PayloadError."""
    if not isinstance(code, str) or not _CURRENCY.match(code):
        raise PayloadError(f"invalid currency code: got {code!r}, expected 3 letters")
    return code.upper()


def exponent(currency: str) -> int:
    return _EXPONENTS.get(normalize_currency(currency), 2)


def major_to_minor(value: object, currency: str) -> int:
    """Convert a major-unit decimal string such as ``"10.50"`` to minor units (1050).

    Rejects floats (they cannot carry exact money), malformed strings and amounts with more
    decimals than the currency has.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise PayloadError(f"invalid amount: got {type(value).__name__}, expected decimal string")
    text = str(value).strip()
    if not _DECIMAL.match(text):
        raise PayloadError(f"invalid amount: got {text!r}, expected a decimal number")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise PayloadError(f"invalid amount: {text!r}") from exc
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise PayloadError(
            f"invalid amount: {text!r} has more decimals than {normalize_currency(currency)} allows"
        )
    return int(scaled)


def minor_amount(value: object) -> int:
    """An integer amount already in minor units; accepts an integer or a digit string."""
    if isinstance(value, bool):
        raise PayloadError("invalid amount: got bool, expected integer minor units")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    raise PayloadError(f"invalid amount: got {value!r}, expected integer minor units")


def format_minor(amount: int, currency: str) -> str:
    """Human-readable major-unit string, for tables only."""
    exp = exponent(currency)
    return f"{Decimal(amount).scaleb(-exp):.{exp}f} {currency.upper()}"
