"""The audit chain detects any edit, insertion, deletion or truncation, and nobody without the
key can make a rewritten chain verify."""

from __future__ import annotations

import dataclasses

import pytest

from payhook.core.audit import (
    GENESIS_HASH,
    MAC_DOMAIN,
    AuditEntry,
    Change,
    authenticate,
    compute_hash,
    extend,
    head_message,
    next_entry,
    verify_chain,
)
from payhook.core.chain_key import HmacChainKey
from payhook.errors import ConfigError

KEY = HmacChainKey("k" * 32)
OTHER_KEY = HmacChainKey("o" * 32)
T = "2026-11-29T10:00:00.000000+00:00"


def _changes(n: int, start: int = 0) -> list[Change]:
    return [
        Change("webhook", f"wh_{i}", "insert", {"status": "received", "n": i}, f"c{i}")
        for i in range(start, start + n)
    ]


def _chain(n: int = 5) -> list[AuditEntry]:
    return extend(None, _changes(n), T, KEY)


def _head(entries: list[AuditEntry]) -> tuple[int, str]:
    return (entries[-1].seq, entries[-1].hash)


def _rehash(entries: list[AuditEntry], start: int) -> list[AuditEntry]:
    """What someone with the database but not the key can do: recompute every hash (and
    link) from ``start`` on, keeping the MACs they cannot recompute."""
    out = entries[:start]
    for entry in entries[start:]:
        prev = out[-1].hash if out else GENESIS_HASH
        relinked = dataclasses.replace(entry, seq=len(out) + 1, prev_hash=prev)
        out.append(dataclasses.replace(relinked, hash=compute_hash(relinked)))
    return out


def test_a_fresh_chain_verifies_against_its_head() -> None:
    entries = _chain()
    report = verify_chain(entries, KEY, _head(entries))
    assert report.ok
    assert report.entries == 5
    assert report.head_hash == entries[-1].hash
    assert report.head_mac == entries[-1].mac
    assert report.macs_verified == 1


def test_first_entry_links_to_genesis_and_each_entry_to_the_previous() -> None:
    entries = _chain(3)
    assert entries[0].prev_hash == GENESIS_HASH
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[1].prev_hash == entries[0].hash
    assert entries[2].prev_hash == entries[1].hash


def test_only_the_last_entry_of_each_append_carries_a_mac() -> None:
    first = _chain(3)
    second = extend(first[-1], _changes(2, 3), T, KEY)
    assert [e.mac is not None for e in first + second] == [False, False, True, False, True]
    assert second[-1].mac == KEY.mac(MAC_DOMAIN + f"5:{second[-1].hash}".encode())
    report = verify_chain(first + second, KEY, _head(second))
    assert (report.ok, report.macs_verified) == (True, 2)


def test_hash_covers_every_field_but_the_mac() -> None:
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
    assert compute_hash(dataclasses.replace(entry, mac=None)) == entry.hash


def test_mac_message_is_domain_separated() -> None:
    assert head_message(7, "ab" * 32) == b"payhook/audit-head/v1\n7:" + b"ab" * 32
    entry = _chain(1)[0]
    assert entry.mac != KEY.mac(f"{entry.seq}:{entry.hash}".encode())


def test_detects_an_edited_entry() -> None:
    entries = _chain()
    entries[2] = dataclasses.replace(entries[2], data={"status": "processed", "n": 2})
    report = verify_chain(entries, KEY, _head(entries))
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.reason == "entry content was altered"


def test_edit_with_every_hash_and_the_recorded_head_recomputed_fails_without_the_key() -> None:
    entries = _chain()
    entries[1] = dataclasses.replace(entries[1], data={"status": "dead", "n": 1})
    forged = _rehash(entries, 1)
    # Every link and hash is consistent again, and the recorded head agrees with the chain:
    # what a plain hash chain accepted.
    assert all(compute_hash(e) == e.hash for e in forged)
    report = verify_chain(forged, KEY, _head(forged))
    assert not report.ok
    assert report.first_bad_seq == 5
    assert report.reason == "MAC does not match: rewritten without the key"


def test_deleted_entry_with_the_rest_rechained_fails_without_the_key() -> None:
    entries = _chain()
    del entries[1]
    forged = _rehash(entries, 1)
    report = verify_chain(forged, KEY, _head(forged))
    assert not report.ok
    assert "MAC does not match" in str(report.reason)


def test_a_forger_cannot_make_a_head_verify_with_another_key() -> None:
    entries = _chain()
    entries[1] = dataclasses.replace(entries[1], data={"status": "dead", "n": 1})
    forged = _rehash(entries, 1)
    forged[-1] = authenticate(forged[-1], OTHER_KEY)
    assert not verify_chain(forged, KEY, _head(forged)).ok
    assert verify_chain(forged, OTHER_KEY, _head(forged)).ok  # only the key tells them apart


def test_stripping_the_mac_or_appending_without_the_key_fails() -> None:
    entries = _chain()
    stripped = [*entries[:-1], dataclasses.replace(entries[-1], mac=None)]
    report = verify_chain(stripped, KEY, _head(stripped))
    assert not report.ok
    assert report.first_bad_seq == 5
    assert str(report.reason).startswith("last entry carries no MAC")

    appended = [*entries, next_entry(entries[-1], _changes(1, 9)[0], T)]
    report = verify_chain(appended, KEY, _head(appended))
    assert (report.ok, report.first_bad_seq) == (False, 6)


@pytest.mark.parametrize("mac", ["", "zz", "ab" * 32, "é" * 64])
def test_a_malformed_or_wrong_mac_is_a_failed_check_not_an_error(mac: str) -> None:
    entries = _chain()
    entries[-1] = dataclasses.replace(entries[-1], mac=mac)
    assert not verify_chain(entries, KEY, _head(entries)).ok


def test_entries_written_before_keying_are_covered_by_the_next_authenticated_head() -> None:
    legacy = [dataclasses.replace(e, mac=None) for e in _chain(3)]
    assert not verify_chain(legacy, KEY, _head(legacy)).ok  # nothing vouches for them yet
    keyed = legacy + extend(legacy[-1], _changes(1, 3), T, KEY)
    assert verify_chain(keyed, KEY, _head(keyed)).ok
    keyed[0] = dataclasses.replace(keyed[0], data={"status": "dead", "n": 0})
    assert not verify_chain(_rehash(keyed, 0), KEY, _head(_rehash(keyed, 0))).ok


def test_cutting_back_to_an_earlier_authenticated_head_is_caught_only_by_an_anchor() -> None:
    first = _chain(3)
    whole = first + extend(first[-1], _changes(2, 3), T, KEY)
    # A cut back to the first append's head, with the recorded head moved too, verifies:
    assert verify_chain(first, KEY, _head(first)).ok
    # ... unless compared with a head anchored outside the database.
    report = verify_chain(first, KEY, _head(first), anchor=_head(whole))
    assert not report.ok
    assert report.reason == "chain ends before the anchored head (entry 5)"
    assert verify_chain(whole, KEY, _head(whole), anchor=_head(first)).ok
    assert verify_chain(whole, KEY, _head(whole), anchor=_head(whole)).ok


def test_a_chain_that_no_longer_passes_through_the_anchor_fails() -> None:
    entries = _chain()
    report = verify_chain(entries, KEY, _head(entries), anchor=(3, "f" * 64))
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert report.reason == "chain no longer passes through the anchored head"


def test_detects_a_deleted_entry() -> None:
    entries = _chain()
    del entries[1]
    report = verify_chain(entries, KEY, _head(_chain()))
    assert not report.ok
    assert report.first_bad_seq == 2


def test_detects_an_inserted_entry() -> None:
    entries = _chain()
    intruder = next_entry(entries[1], Change("payment", "p", "insert", {}, "x"), "t")
    entries.insert(2, intruder)
    report = verify_chain(entries, KEY, _head(_chain()))
    assert not report.ok


def test_detects_entries_cut_off_the_end() -> None:
    entries = _chain()
    report = verify_chain(entries[:-2], KEY, _head(entries))
    assert not report.ok
    assert report.reason == "chain does not reach the recorded head"


def test_detects_a_chain_emptied_entirely() -> None:
    entries = _chain()
    assert not verify_chain([], KEY, _head(entries)).ok
    assert verify_chain([], KEY, None).ok


def test_extending_continues_from_the_previous_head() -> None:
    first = _chain(2)
    more = extend(first[-1], _changes(2), "later", KEY)
    whole = first + more
    assert [e.seq for e in whole] == [1, 2, 3, 4]
    assert verify_chain(whole, KEY, _head(whole)).ok


@pytest.mark.parametrize("data", [{"amount": 1050, "currency": "EUR"}, {"ok": True, "x": None}])
def test_entries_round_trip_through_dicts(data: dict[str, object]) -> None:
    entry = next_entry(None, Change("payment", "stripe/pi_1", "modify", data, "s1"), "t")
    assert AuditEntry.from_dict(entry.to_dict()) == entry
    signed = authenticate(entry, KEY)
    assert AuditEntry.from_dict(signed.to_dict()) == signed


def test_hmac_key_known_answer_and_minimum_length() -> None:
    # RFC 4231, test case 6 (the first of its vectors with a key of 32 bytes or more).
    key = HmacChainKey(b"\xaa" * 131)
    message = b"Test Using Larger Than Block-Size Key - Hash Key First"
    expected = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    assert key.mac(message) == expected
    assert key.verify(message, expected)
    assert not key.verify(message + b"!", expected)
    assert "aa" not in repr(key)
    with pytest.raises(ConfigError, match="got 31 bytes, expected at least 32"):
        HmacChainKey("x" * 31)
