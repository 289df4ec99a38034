"""Split a batch body into its events' own JSON text, exactly as the provider sent each one.

A batch delivery (GoCardless ``events``, Adyen ``notificationItems``) is stored one event at a
time. Re-encoding each parsed event costs more than parsing the whole body, so the body is
parsed here with ``json``'s own scanner and string reader, walked by hand only down to the
events: each event's text is then the slice of the body the scanner read it from. The decoded
value is what ``json.loads`` returns (same scanner, same rules for whitespace, separators,
duplicate keys: the last wins) and each slice parses to exactly that event.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from json.decoder import JSONDecodeError, scanstring  # type: ignore[attr-defined]
from typing import Any

# json.loads's own scanner and string reader (typeshed declares neither).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # json.decoder.WHITESPACE
_SPACE = frozenset(" \t\n\r")
# ASCII JSON for an event whose text cannot be stored as UTF-8 (see event_bytes).
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"))

#: Reads the value at an index: (value, end, what was found inside it).
_Reader = Callable[[str, int], tuple[Any, int, Any]]


def body_text(body: bytes, *, strict_utf8: bool = True) -> str:
    """The text ``json.loads(body)`` parses (raises ValueError where it would).

    A UTF-8 body is decoded directly (json.loads sniffs for UTF-16/32 on every call); others
    take json's own detection. ``strict_utf8`` refuses UTF-8 that encodes a lone surrogate,
    as ``parse_json_object`` does; json.loads lets it through.
    """
    if body[:1] in (b"{", b"[") and body[1:2] != b"\x00":
        return body.decode() if strict_utf8 else body.decode("utf-8", "surrogatepass")
    return body.decode(json.detect_encoding(body), "surrogatepass")


def split_batch(text: str, key: str) -> tuple[Any, list[str]]:
    """``json.loads(text)``, and the text of each item of its array ``key``.

    The list is empty when the value is not an object or its ``key`` is not an array.
    Invalid JSON raises ValueError (JSONDecodeError), as json.loads does.
    """
    # The layout providers send, compact with the batch first ({"events":[...],"meta":...}),
    # is read in few steps: the items one by one, then every member after them in one scan
    # of the object "{" + the rest. Anything else (whitespace, the batch later or twice, an
    # error) takes the general walk, which also reports errors where they are.
    prefix = f'{{"{key}":['
    if text.startswith(prefix):
        try:
            return _split_compact(text, key, len(prefix))
        except (ValueError, IndexError, StopIteration, RecursionError):
            pass
    return _split(text, key, _items)


def _split_compact(text: str, key: str, i: int) -> tuple[Any, list[str]]:
    """split_batch's fast path, from just inside the ``[``; ValueError when not that layout."""
    items: list[Any] = []
    found: list[str] = []
    end = i  # then the index of the "]"
    if text[i] != "]":
        while True:
            item, end = _SCAN(text, i)
            items.append(item)
            found.append(text[i:end])
            if text[end] != ",":
                break
            i = end + 1
        if text[end] != "]":
            raise ValueError("not the compact layout")
    data = {key: items}
    i = end + 1
    if text.startswith(',"', i):
        # '{' in place of the ',': the rest reads as an object with the same members.
        members, length = _SCAN("{" + text[i + 1 :], 0)
        if key in members:
            raise ValueError("a second batch: the general walk keeps the last")
        data.update(members)
        i += length
    elif text[i] == "}":
        i += 1
    else:
        raise ValueError("not the compact layout")
    if i != len(text) and _skip(text, i) != len(text):
        raise ValueError("extra data")
    return data, found


def split_wrapped_batch(text: str, key: str, inner: str) -> tuple[Any, list[str]]:
    """As split_batch, but an item's text is that of ``item[inner]`` ("" where the item is
    not an object holding ``inner``)."""
    return _split(text, key, functools.partial(_wrapped_items, inner=inner))


def event_bytes(text: str, event: Any) -> bytes:
    """The bytes to store for one event: its own text as UTF-8.

    Text decoded from UTF-16/32 (or UTF-8 with an encoded lone surrogate) can hold a lone
    surrogate that UTF-8 cannot store: that event is stored as ASCII JSON instead (escapes).
    """
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(event).encode()


def _split(text: str, key: str, read: _Reader) -> tuple[Any, list[str]]:
    """The general walk: ``json.loads(text)``, and what ``read`` found in its ``key``."""
    i = _skip(text, 0) if text[:1] in _SPACE else 0
    try:
        if text[i : i + 1] == "{":
            data, end, found = _object(text, i, key, read)
        else:
            data, end = _value(text, i)
            found = None
    except IndexError:  # the text ends where more was expected
        raise JSONDecodeError("Expecting value", text, len(text)) from None
    if end != len(text) and _skip(text, end) != len(text):
        raise JSONDecodeError("Extra data", text, end)
    return data, found or []


# The walkers below follow CPython's _json.c (_parse_object_unicode, _parse_array_unicode)
# step by step. The whitespace pattern runs only where a whitespace character is (compact
# bodies have none); indexing past the end raises IndexError (see _split).


def _skip(text: str, i: int) -> int:
    """The index after the whitespace at ``text[i]`` (the pattern always matches)."""
    return _WHITESPACE.match(text, i).end()  # type: ignore[union-attr]


def _value(text: str, i: int) -> tuple[Any, int]:
    try:
        return _SCAN(text, i)
    except StopIteration:
        raise JSONDecodeError("Expecting value", text, i) from None


def _span(text: str, i: int) -> tuple[Any, int, str]:
    value, end = _value(text, i)
    return value, end, text[i:end]


def _items(text: str, i: int) -> tuple[Any, int, list[str] | None]:
    """The value at ``text[i]``; when an array, also each item's text."""
    return _array(text, i, _span)


def _wrapped_items(text: str, i: int, inner: str) -> tuple[Any, int, list[str] | None]:
    """As _items, but an item's text is that of its member ``inner`` ("" when it has none)."""
    return _array(text, i, functools.partial(_member_text, inner=inner))


def _member_text(text: str, i: int, inner: str) -> tuple[Any, int, str]:
    if text[i] == "{":
        value, end, inside = _object(text, i, inner, _span)
        return value, end, inside or ""
    value, end = _value(text, i)
    return value, end, ""


def _array(text: str, i: int, read: _Reader) -> tuple[Any, int, list[str] | None]:
    """The value at ``text[i]``; when an array, also what ``read`` found in each item."""
    if text[i] != "[":
        value, end = _value(text, i)
        return value, end, None
    values: list[Any] = []
    found: list[str] = []
    i += 1
    if text[i] in _SPACE:
        i = _skip(text, i)
    if text[i] == "]":
        return values, i + 1, found
    while True:
        value, end, item_text = read(text, i)
        values.append(value)
        found.append(item_text)
        char = text[end]
        if char in _SPACE:
            end = _skip(text, end)
            char = text[end]
        if char == "]":
            return values, end + 1, found
        if char != ",":
            raise JSONDecodeError("Expecting ',' delimiter", text, end)
        i = end + 1
        if text[i] in _SPACE:
            i = _skip(text, i)


def _object(text: str, i: int, key: str, read: _Reader) -> tuple[dict[str, Any], int, Any]:
    """The object at ``text[i]`` (a ``{``); ``read`` reads the value of ``key``, and what it
    found there is returned (from the last ``key``, whose value json.loads keeps too)."""
    data: dict[str, Any] = {}
    found = None
    i += 1
    char = text[i]
    if char in _SPACE:
        i = _skip(text, i)
        char = text[i]
    if char == "}":
        return data, i + 1, found
    while True:
        if char != '"':
            raise JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
        name, i = scanstring(text, i + 1)
        char = text[i]
        if char in _SPACE:
            i = _skip(text, i)
            char = text[i]
        if char != ":":
            raise JSONDecodeError("Expecting ':' delimiter", text, i)
        i += 1
        if text[i] in _SPACE:
            i = _skip(text, i)
        if name == key:
            data[name], i, found = read(text, i)
        else:
            data[name], i = _value(text, i)
        char = text[i]
        if char in _SPACE:
            i = _skip(text, i)
            char = text[i]
        if char == "}":
            return data, i + 1, found
        if char != ",":
            raise JSONDecodeError("Expecting ',' delimiter", text, i)
        i += 1
        char = text[i]
        if char in _SPACE:
            i = _skip(text, i)
            char = text[i]
