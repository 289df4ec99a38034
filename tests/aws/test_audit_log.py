"""DynamoAuditLog: atomic appends guarded by the head, markers per change-feed position, and
heads authenticated by a KMS HMAC key that a table writer without KMS access cannot forge."""

from __future__ import annotations

import dataclasses
import json

import pytest

from payhook.backends.aws.audit import MAX_ENTRIES_PER_APPEND, DynamoAuditLog, KmsChainKey
from payhook.core.audit import GENESIS_HASH, AuditEntry, Change, compute_hash, extend, verify_chain
from payhook.core.chain_key import HmacChainKey
from payhook.errors import ConcurrencyError, StorageUnavailableError
from payhook.service.audit import record_changes, verify_log
from tests.aws.emulator import AwsStack
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws

T = "2023-11-14T22:13:20+00:00"


def audit_log(stack: AwsStack) -> DynamoAuditLog:
    return DynamoAuditLog(stack.clients.dynamodb, table=stack.audit_table)


def kms_key(stack: AwsStack) -> KmsChainKey:
    return KmsChainKey(stack.clients.kms, key_id=stack.audit_key_id)


def change(n: int, source: str | None = None) -> Change:
    data = {"status": "succeeded", "amount": 100 * n, "currency": "EUR", "version": n}
    return Change("payment", f"stripe/pi_{n}", "insert", data, source or f"payment:rec{n}")


def rewrite(stack: AwsStack, entries: list[AuditEntry]) -> None:
    """What a principal that may write the audit table, but not call GenerateMac, can do:
    replace the chain with ``entries`` re-hashed and re-linked, and move the head item to
    match. MACs stay as they were."""
    ddb = stack.clients.dynamodb
    old = ddb.query(
        TableName=stack.audit_table,
        KeyConditionExpression="chain = :main",
        ExpressionAttributeValues={":main": {"S": "main"}},
    )["Items"]
    for item in old:
        ddb.delete_item(
            TableName=stack.audit_table, Key={"chain": item["chain"], "seq": item["seq"]}
        )
    chained: list[AuditEntry] = []
    for entry in entries:
        prev = chained[-1].hash if chained else GENESIS_HASH
        relinked = dataclasses.replace(entry, seq=len(chained) + 1, prev_hash=prev)
        chained.append(dataclasses.replace(relinked, hash=compute_hash(relinked)))
    for e in chained:
        item = {
            "chain": {"S": "main"},
            "seq": {"N": str(e.seq)},
            "recordedAt": {"S": e.recorded_at},
            "entity": {"S": e.entity},
            "entityKey": {"S": e.entity_key},
            "action": {"S": e.action},
            "data": {"S": json.dumps(e.data, sort_keys=True, separators=(",", ":"))},
            "sourceId": {"S": e.source_id},
            "prevHash": {"S": e.prev_hash},
            "hash": {"S": e.hash},
        }
        if e.mac:
            item["mac"] = {"S": e.mac}
        ddb.put_item(TableName=stack.audit_table, Item=item)
    head = {"chain": {"S": "head"}, "seq": {"N": "0"}}
    ddb.put_item(
        TableName=stack.audit_table,
        Item={**head, "lastSeq": {"N": str(chained[-1].seq)}, "hash": {"S": chained[-1].hash}},
    )


def test_appended_entries_read_back_as_a_verified_chain(stack: AwsStack, clock: FakeClock) -> None:
    log, key = audit_log(stack), kms_key(stack)
    assert log.head() is None
    assert log.recorded_head() is None

    first = record_changes(log, [change(1), change(2)], key, clock)
    second = record_changes(log, [change(3)], key, clock)

    entries = list(log.entries())
    assert entries == [*first, *second]
    assert [e.mac is not None for e in entries] == [False, True, True]
    assert log.head() == second[-1]
    assert log.recorded_head() == (3, second[-1].hash)
    report = verify_log(log, key)
    assert (report.ok, report.chain.macs_verified) == (True, 2)


def test_an_edit_rehashed_with_the_head_moved_fails_verification(
    stack: AwsStack, clock: FakeClock
) -> None:
    log, key = audit_log(stack), kms_key(stack)
    record_changes(log, [change(1), change(2)], key, clock)
    record_changes(log, [change(3)], key, clock)
    entries = list(log.entries())
    entries[0] = dataclasses.replace(entries[0], data={**entries[0].data, "amount": 1})
    rewrite(stack, entries)

    assert all(compute_hash(e) == e.hash for e in log.entries())
    assert log.recorded_head() == (3, log.head().hash)  # type: ignore[union-attr]
    report = verify_log(log, key)
    assert not report.ok
    assert report.chain.first_bad_seq == 2
    assert report.chain.reason == "MAC does not match: rewritten without the key"


def test_a_deleted_entry_with_the_chain_rebuilt_fails_verification(
    stack: AwsStack, clock: FakeClock
) -> None:
    log, key = audit_log(stack), kms_key(stack)
    record_changes(log, [change(1), change(2), change(3)], key, clock)
    entries = list(log.entries())
    del entries[1]
    rewrite(stack, entries)
    assert not verify_log(log, key).ok


def test_a_head_macd_with_a_key_outside_kms_fails(stack: AwsStack, clock: FakeClock) -> None:
    log = audit_log(stack)
    record_changes(log, [change(1)], HmacChainKey("an-attacker-key-" * 3), clock)
    report = verify_log(log, kms_key(stack))
    assert (report.ok, report.chain.first_bad_seq) == (False, 1)


@pytest.mark.parametrize("mac", ["", "not hex", "ab" * 32, "00"])
def test_kms_verification_of_a_wrong_or_malformed_mac_is_false(stack: AwsStack, mac: str) -> None:
    key = kms_key(stack)
    good = key.mac(b"message")
    assert len(bytes.fromhex(good)) == 32
    assert key.verify(b"message", good)
    assert not key.verify(b"message!", good)
    assert not key.verify(b"message", mac)


def test_an_unusable_kms_key_is_storage_unavailable(stack: AwsStack) -> None:
    missing = KmsChainKey(stack.clients.kms, key_id="arn:aws:kms:eu-west-1:123456789012:key/none")
    with pytest.raises(StorageUnavailableError, match="authenticating the audit head"):
        missing.mac(b"message")
    with pytest.raises(StorageUnavailableError, match="verifying an audit MAC"):
        missing.verify(b"message", "ab" * 32)


def test_append_onto_a_stale_head_is_refused_whole(stack: AwsStack, clock: FakeClock) -> None:
    log, key = audit_log(stack), kms_key(stack)
    [head] = record_changes(log, [change(1)], key, clock)
    stale = extend(None, [change(2)], T, key)

    with pytest.raises(ConcurrencyError):
        log.append(stale, expected_head=None)
    ahead = extend(head, [change(3)], T, key)
    record_changes(log, [change(4)], key, clock)
    with pytest.raises(ConcurrencyError):
        log.append(ahead, expected_head=head)

    assert [e.entity_key for e in log.entries()] == ["stripe/pi_1", "stripe/pi_4"]
    assert verify_log(log, key).ok
    assert log.chained_sources(["payment:rec2", "payment:rec3"]) == set()


def test_a_change_feed_position_is_chained_at_most_once(stack: AwsStack, clock: FakeClock) -> None:
    log, key = audit_log(stack), kms_key(stack)
    record_changes(log, [change(1, "payment:same")], key, clock)
    with pytest.raises(ConcurrencyError):
        record_changes(log, [change(2, "payment:same")], key, clock)
    assert [e.seq for e in log.entries()] == [1]


def test_chained_sources_finds_exactly_the_chained_ones_beyond_one_batch_get(
    stack: AwsStack, clock: FakeClock
) -> None:
    log, key = audit_log(stack), kms_key(stack)
    changes = [change(n) for n in range(1, 121)]
    for start in range(0, len(changes), MAX_ENTRIES_PER_APPEND):
        record_changes(log, changes[start : start + MAX_ENTRIES_PER_APPEND], key, clock)
    asked = [c.source_id for c in changes] + ["payment:never"]
    assert log.chained_sources(asked) == {c.source_id for c in changes}
    report = verify_chain(log.entries(), key, log.recorded_head())
    assert (report.ok, report.entries, report.macs_verified) == (True, 120, 3)


def test_more_entries_than_one_transaction_holds_are_refused(stack: AwsStack) -> None:
    entries = extend(None, [change(n) for n in range(50)], T, kms_key(stack))
    with pytest.raises(ValueError, match="at most 49"):
        audit_log(stack).append(entries, expected_head=None)


def test_missing_audit_table_is_storage_unavailable(stack: AwsStack, clock: FakeClock) -> None:
    stack.clients.dynamodb.delete_table(TableName=stack.audit_table)
    log = audit_log(stack)
    with pytest.raises(StorageUnavailableError):
        log.head()
    with pytest.raises(StorageUnavailableError):
        log.append(extend(None, [change(1)], "t", kms_key(stack)), expected_head=None)
