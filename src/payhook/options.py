"""Typed settings: ``msgspec`` conversion whose errors say "key: got X, expected Y".

Shared by the TOML loader (``config.py``) and the provider sections (which also arrive as
JSON from Secrets Manager on AWS). A value is shown back only when its key cannot hold a
secret.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from msgspec import inspect

from payhook.errors import ConfigError

T = TypeVar("T")

#: Keys whose values may be secrets: an error names their type, never their value.
SECRET_KEYS = frozenset(
    {"secret", "secrets", "key", "authorization", "api_key", "token", "client_secret"}
)
NOT_BLANK = r"\S"  # the pattern of a string setting that must not be blank

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_STEP = re.compile(r"\.(\w+)|\[(\d+|\.\.\.)\]")


class Options(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Base of every settings section: unknown keys are refused."""


def unknown_key_error(where: str, key: str, known: list[str], what: str = "setting") -> ConfigError:
    """``where.key: unknown setting``, with the closest valid key when one is close."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}.{key}: unknown {what}{hint}")


def convert(data: Any, kind: type[T], where: str, *, strict: bool = True) -> T:
    """``msgspec.convert`` with errors that name the setting (``where.key``).

    ``strict=False`` also reads numbers and booleans from strings (environment variables).
    """
    if isinstance(data, Mapping) and issubclass(kind, msgspec.Struct):
        known = list(kind.__struct_fields__)
        for key in data:
            if key not in known:
                raise unknown_key_error(where, str(key), known)
    try:
        return msgspec.convert(data, kind, strict=strict)
    except msgspec.ValidationError as exc:
        raise ConfigError(_message(str(exc), data, kind, where)) from None


def _message(error: str, data: Any, kind: type[Any], where: str) -> str:
    match = _AT.match(error)
    assert match is not None  # the pattern matches any text
    what, path = match["what"], match["path"] or ""
    missing = re.match(r"Object missing required field `(\w+)`", what)
    if missing:
        return f"{where}{path}.{missing[1]}: got nothing, expected a value (it is required)"
    steps = [m[1] or m[2] for m in _STEP.finditer(path)]
    value, found = _lookup(data, steps)
    if what.startswith("Invalid enum value"):
        allowed = ", ".join(str(v) for v in _allowed(inspect.type_info(kind), steps))
        expected = f"one of {allowed}"
    else:
        expected = what.split(", got")[0].removeprefix("Expected ").replace("`", "")
        expected = expected.replace(f"matching regex {NOT_BLANK!r}", "that is not blank")
        for name, said in (("object", "a table"), ("array", "a list"), (" | null", "")):
            expected = expected.replace(name, said)
    secret = any(step in SECRET_KEYS for step in steps)
    if "..." in steps:  # inside a table: msgspec does not say which key
        return f"{where}{path}: expected {expected}"
    if not found:
        got = "nothing"
    elif isinstance(value, dict):
        got = "a table"
    elif isinstance(value, list):
        got = "a list"
    elif value is None:
        got = "nothing"
    elif secret:
        got = type(value).__name__
    else:
        got = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
    return f"{where}{path}: got {got}, expected {expected}"


def _lookup(data: Any, steps: list[str]) -> tuple[Any, bool]:
    for step in steps:
        if isinstance(data, Mapping) and step in data:
            data = data[step]
        elif isinstance(data, list) and step.isdigit() and int(step) < len(data):
            data = data[int(step)]
        else:
            return None, False
    return data, True


def _allowed(info: inspect.Type, steps: list[str]) -> list[Any]:
    """The values a Literal or Enum at ``steps`` allows."""
    for step in steps:
        info = _unwrap(info, step)
    values: list[Any] = []
    for option in _options(info):
        if isinstance(option, inspect.LiteralType):
            values += option.values
        elif isinstance(option, inspect.EnumType):
            values += [member.value for member in option.cls]
    return values


def _options(info: inspect.Type) -> list[inspect.Type]:
    """The alternatives of a union (or the type itself), without their constraints."""
    options = list(getattr(info, "types", (info,)))
    return [o.type if isinstance(o, inspect.Metadata) else o for o in options]


def _unwrap(info: inspect.Type, step: str) -> inspect.Type:
    for option in _options(info):
        if isinstance(option, inspect.StructType):
            for field in option.fields:
                if field.name == step:
                    return field.type
        if isinstance(option, inspect.DictType) and step == "...":
            return option.value_type
        if isinstance(option, inspect.ListType) and step.isdigit():
            return option.item_type
    return info
