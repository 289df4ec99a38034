"""Splitting batch bodies: the decoded value is json.loads's, each event's text parses to it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from payhook.providers.json_batch import (
    body_text,
    event_bytes,
    split_batch,
    split_wrapped_batch,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
spaces = st.sampled_from(["", "", "", " ", "\n  ", "\t", "\r\n"])


@st.composite
def rendered(draw: st.DrawFn, value: Any) -> str:
    """``value`` as JSON text in one of the ways senders write it."""
    style = draw(st.sampled_from(["compact", "default", "indented"]))
    ascii_only = draw(st.booleans())
    if style == "compact":
        return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"))
    return json.dumps(value, ensure_ascii=ascii_only, indent=2 if style == "indented" else None)


@st.composite
def batch_texts(draw: st.DrawFn, key: str, item: st.SearchStrategy[Any] = values) -> str:
    """An object holding ``key`` (an array, mostly) among other members, duplicates allowed,
    written with any whitespace: the shapes a walker must read as json.loads does."""
    members = draw(st.lists(st.tuples(st.text(max_size=4), values), max_size=3))
    batches = draw(st.integers(1, 2))
    for _ in range(batches):
        if draw(st.integers(0, 9)):
            items = [draw(rendered(i)) for i in draw(st.lists(item, max_size=3))]
            gap = draw(spaces)
            batch = f"[{gap}{f'{gap},{gap}'.join(items)}{gap}]"
        else:
            batch = draw(rendered(draw(values)))
        members.insert(draw(st.integers(0, len(members))), (key, batch))
    parts = []
    for name, value in members:
        text = value if isinstance(value, str) and name == key else draw(rendered(value))
        gaps = [draw(spaces) for _ in range(4)]
        parts.append(f"{gaps[0]}{json.dumps(name)}{gaps[1]}:{gaps[2]}{text}{gaps[3]}")
    return "{" + ",".join(parts) + "}" + draw(spaces)


# The layout providers send: compact, the batch first (split_batch reads it on a fast path).
compact_batches = st.builds(
    lambda items, rest, ascii_only: json.dumps(
        {"events": items, **rest}, ensure_ascii=ascii_only, separators=(",", ":")
    ),
    st.lists(values, max_size=3),
    st.dictionaries(st.text(max_size=4), values, max_size=2),
    st.booleans(),
)
any_batches = st.one_of(batch_texts("events"), compact_batches)


def check_split(text: str, key: str) -> None:
    data, texts = split_batch(text, key)
    assert data == json.loads(text)
    batch = data.get(key) if isinstance(data, dict) else None
    if isinstance(batch, list):
        event("array")
        assert [json.loads(t) for t in texts] == batch
        assert all(t in text for t in texts)  # slices of the body, not re-encodings
    else:
        assert texts == []


@settings(max_examples=400, deadline=None)
@given(text=any_batches)
def test_split_reads_what_json_loads_reads_and_each_item_text_parses_to_the_item(
    text: str,
) -> None:
    event("compact" if text.startswith('{"events":[') else "general")
    check_split(text, "events")


@settings(max_examples=400, deadline=None)
@given(text=any_batches, data=st.data())
def test_split_rejects_exactly_what_json_loads_rejects(text: str, data: st.DataObject) -> None:
    event("compact" if text.startswith('{"events":[') else "general")
    cut = data.draw(st.integers(0, len(text)))
    how = data.draw(st.sampled_from(["drop", "insert", "truncate"]))
    if how == "drop":
        mutated = text[:cut] + text[cut + 1 :]
    elif how == "insert":
        mutated = text[:cut] + data.draw(st.sampled_from(list('{}[],:" 1x\\'))) + text[cut:]
    else:
        mutated = text[:cut]
    try:
        json.loads(mutated)
    except ValueError:
        event("rejected")
        with pytest.raises(ValueError):  # json.JSONDecodeError, as json.loads raises
            split_batch(mutated, "events")
    else:
        event("still valid")
        check_split(mutated, "events")


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        '{"events":[1],}',
        '{"events":[1,]}',
        '{"events":[1]',
        '{"events":[1]}x',
        '{"events":[1] }}',
        '{"events":[1],"meta"}',
        '{"events":[1],"meta":}',
        '{"events":[01]}',
        '{"events":["\x01"]}',
        "{'events':[]}",
    ],
)
def test_invalid_bodies_raise_as_json_loads_does(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        split_batch(text, "events")


@pytest.mark.parametrize("text", ["[]", '"events"', " 7 ", "null", '[{"events":[1]}]'])
def test_a_body_that_is_no_object_decodes_with_no_item_texts(text: str) -> None:
    assert split_batch(text, "events") == (json.loads(text), [])


def test_a_repeated_batch_key_keeps_the_last_array_and_its_texts() -> None:
    data, texts = split_batch('{"events":[{"id":"A"}],"meta":{},"events":[{"id":"B"}]}', "events")
    assert data == {"events": [{"id": "B"}], "meta": {}}
    assert texts == ['{"id":"B"}']
    data, texts = split_batch('{"events":[{"id":"A"}],"events":{"id":"B"}}', "events")
    assert (data, texts) == ({"events": {"id": "B"}}, [])


def test_item_text_keeps_the_senders_spelling() -> None:
    text = '{ "events" : [ {"id": "EV1",  "note": "caf\\u00e9 \u00e9"} , 2 ] }\n'
    assert split_batch(text, "events")[1] == ['{"id": "EV1",  "note": "caf\\u00e9 \u00e9"}', "2"]


wrappers = st.one_of(
    st.builds(lambda item: {"NotificationRequestItem": item}, values),
    st.dictionaries(st.sampled_from(["NotificationRequestItem", "other"]), values, max_size=2),
    values,
)


@settings(max_examples=300, deadline=None)
@given(text=batch_texts("notificationItems", wrappers))
def test_wrapped_split_gives_each_wrappers_inner_text(text: str) -> None:
    data, texts = split_wrapped_batch(text, "notificationItems", "NotificationRequestItem")
    assert data == json.loads(text)
    batch = data.get("notificationItems")
    if not isinstance(batch, list):
        assert texts == []
        return
    assert len(texts) == len(batch)
    for wrapper, item_text in zip(batch, texts, strict=True):
        if isinstance(wrapper, dict) and "NotificationRequestItem" in wrapper:
            event("inner")
            assert json.loads(item_text) == wrapper["NotificationRequestItem"]
            assert item_text in text
        else:
            assert item_text == ""


def test_wrapped_split_takes_the_last_inner_member() -> None:
    text = '{"items":[{"inner":{"v":1},"x":0,"inner":{"v":2}}, 5]}'
    data, texts = split_wrapped_batch(text, "items", "inner")
    assert data == json.loads(text)
    assert texts == ['{"v":2}', ""]


@settings(max_examples=200, deadline=None)
@given(
    value=st.dictionaries(st.text(max_size=6), values, max_size=4),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"]),
    leading=spaces,
)
def test_body_text_is_the_text_json_loads_reads_in_every_encoding(
    value: dict[str, Any], encoding: str, leading: str
) -> None:
    body = (leading + json.dumps(value, ensure_ascii=False)).encode(encoding)
    assert json.loads(body_text(body)) == json.loads(body) == value


def test_strict_body_text_refuses_utf8_that_encodes_a_surrogate() -> None:
    body = b'{"events":["\xed\xa0\x80"]}'
    with pytest.raises(UnicodeDecodeError):
        body_text(body)
    assert json.loads(body_text(body, strict_utf8=False)) == json.loads(body)


def test_event_bytes_is_the_text_as_utf8() -> None:
    assert event_bytes('{"n":"caf\u00e9"}', {"n": "caf\u00e9"}) == '{"n":"caf\u00e9"}'.encode()


def test_an_event_with_a_lone_surrogate_is_stored_as_ascii_json_of_the_same_value() -> None:
    body = '{"events":[{"id":"E1","n":"\ud800"}]}'.encode("utf-16", "surrogatepass")
    data, [text] = split_batch(body_text(body), "events")
    stored = event_bytes(text, data["events"][0])
    assert stored.isascii()
    assert json.loads(stored) == data["events"][0] == json.loads(body)["events"][0]
