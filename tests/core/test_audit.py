"""The audit chain detects any edit, insertion, deletion or truncation."""

from __future__ import annotations

import dataclasses

import pytest

from payhook.core.audit import (
    GENESIS_HASH,
    AuditEntry,
    Change,
    compute_hash,
    extend,
    next_entry,
    verify_chain,
)


def _changes(n: int) -> list[Change]:
    return [
        Change("webhook", f"wh_{i}", "insert", {"status": "received", "n": i}, f"c{i}")
        for i in range(n)
    ]


def _chain(n: int = 5) -> list[AuditEntry]:
    return extend(None, _changes(n), "2026-11-29T10:00:00.000000+00:00")


def _head(entries: list[AuditEntry]) -> tuple[int, str]:
    return (entries[-1].seq, entries[-1].hash)


def test_a_fresh_chain_verifies_against_its_head() -> None:
    entries = _chain()
    report = verify_chain(entries, _head(entries))
    assert report.ok
    assert report.entries == 5
    assert report.head_hash == entries[-1].hash


def test_first_entry_links_to_genesis_and_each_entry_to_the_previous() -> None:
    entries = _chain(3)
    assert entries[0].prev_hash == GENESIS_HASH
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[1].prev_hash == entries[0].hash
    assert entries[2].prev_hash == entries[1].hash


def test_hash_covers_every_field() -> None:
    entry = _chain(1)[0]
    for field, value in [
        ("recorded_at", "2030-01-01T00:00:00+00:00"),
        ("entity", "payment"),
        ("entity_key", "other"),
        ("action", "remove"),
        ("data", {"status": "processed"}),
        ("source_id", "c99"),
        ("prev_hash", "1" * 64),
        ("seq", 2),
    ]:
        assert compute_hash(dataclasses.replace(entry, **{field: value})) != entry.hash, field


def test_detects_an_edited_entry() -> None:
    entries = _chain()
    entries[2] = dataclasses.replace(entries[2], data={"status": "processed", "n": 2})
    report = verify_chain(entries, _head(entries))
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.reason == "entry content was altered"


def test_detects_an_edited_entry_whose_hash_was_recomputed() -> None:
    entries = _chain()
    forged = dataclasses.replace(entries[1], data={"status": "dead"})
    entries[1] = dataclasses.replace(forged, hash=compute_hash(forged))
    report = verify_chain(entries, _head(entries))
    assert not report.ok
    assert report.first_bad_seq == 3  # the next entry no longer links to it


def test_detects_a_deleted_entry() -> None:
    entries = _chain()
    del entries[1]
    report = verify_chain(entries, _head(_chain()))
    assert not report.ok
    assert report.first_bad_seq == 2


def test_detects_an_inserted_entry() -> None:
    entries = _chain()
    intruder = next_entry(entries[1], Change("payment", "p", "insert", {}, "x"), "t")
    entries.insert(2, intruder)
    report = verify_chain(entries, _head(_chain()))
    assert not report.ok


def test_detects_entries_cut_off_the_end() -> None:
    entries = _chain()
    report = verify_chain(entries[:-2], _head(entries))
    assert not report.ok
    assert report.reason == "chain does not reach the recorded head"


def test_detects_a_chain_emptied_entirely() -> None:
    entries = _chain()
    assert not verify_chain([], _head(entries)).ok
    assert verify_chain([], None).ok


def test_extending_continues_from_the_previous_head() -> None:
    first = _chain(2)
    more = extend(first[-1], _changes(2), "later")
    whole = first + more
    assert [e.seq for e in whole] == [1, 2, 3, 4]
    assert verify_chain(whole, _head(whole)).ok


@pytest.mark.parametrize("data", [{"amount": 1050, "currency": "EUR"}, {"ok": True, "x": None}])
def test_entries_round_trip_through_dicts(data: dict[str, object]) -> None:
    entry = next_entry(None, Change("payment", "stripe/pi_1", "modify", data, "s1"), "t")
    assert AuditEntry.from_dict(entry.to_dict()) == entry
