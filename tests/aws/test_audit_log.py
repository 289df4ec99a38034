"""DynamoAuditLog: atomic appends guarded by the head, markers per change-feed position."""

from __future__ import annotations

import pytest

from payhook.backends.aws.audit import MAX_ENTRIES_PER_APPEND, DynamoAuditLog
from payhook.core.audit import Change, extend, verify_chain
from payhook.errors import ConcurrencyError, StorageUnavailableError
from payhook.service.audit import record_changes, verify_log
from tests.aws.emulator import AwsStack
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def audit_log(stack: AwsStack) -> DynamoAuditLog:
    return DynamoAuditLog(stack.clients.dynamodb, table=stack.audit_table)


def change(n: int, source: str | None = None) -> Change:
    data = {"status": "succeeded", "amount": 100 * n, "currency": "EUR", "version": n}
    return Change("payment", f"stripe/pi_{n}", "insert", data, source or f"payment:rec{n}")


def test_appended_entries_read_back_as_a_verified_chain(stack: AwsStack, clock: FakeClock) -> None:
    log = audit_log(stack)
    assert log.head() is None
    assert log.recorded_head() is None

    first = record_changes(log, [change(1), change(2)], clock)
    second = record_changes(log, [change(3)], clock)

    entries = list(log.entries())
    assert entries == [*first, *second]
    assert log.head() == second[-1]
    assert log.recorded_head() == (3, second[-1].hash)
    assert verify_log(log).ok


def test_append_onto_a_stale_head_is_refused_whole(stack: AwsStack, clock: FakeClock) -> None:
    log = audit_log(stack)
    [head] = record_changes(log, [change(1)], clock)
    stale = extend(None, [change(2)], "2023-11-14T22:13:20+00:00")

    with pytest.raises(ConcurrencyError):
        log.append(stale, expected_head=None)
    ahead = extend(head, [change(3)], "2023-11-14T22:13:20+00:00")
    record_changes(log, [change(4)], clock)
    with pytest.raises(ConcurrencyError):
        log.append(ahead, expected_head=head)

    assert [e.entity_key for e in log.entries()] == ["stripe/pi_1", "stripe/pi_4"]
    assert verify_log(log).ok
    assert log.chained_sources(["payment:rec2", "payment:rec3"]) == set()


def test_a_change_feed_position_is_chained_at_most_once(stack: AwsStack, clock: FakeClock) -> None:
    log = audit_log(stack)
    record_changes(log, [change(1, "payment:same")], clock)
    with pytest.raises(ConcurrencyError):
        record_changes(log, [change(2, "payment:same")], clock)
    assert [e.seq for e in log.entries()] == [1]


def test_chained_sources_finds_exactly_the_chained_ones_beyond_one_batch_get(
    stack: AwsStack, clock: FakeClock
) -> None:
    log = audit_log(stack)
    changes = [change(n) for n in range(1, 121)]
    for start in range(0, len(changes), MAX_ENTRIES_PER_APPEND):
        record_changes(log, changes[start : start + MAX_ENTRIES_PER_APPEND], clock)
    asked = [c.source_id for c in changes] + ["payment:never"]
    assert log.chained_sources(asked) == {c.source_id for c in changes}
    report = verify_chain(log.entries(), log.recorded_head())
    assert (report.ok, report.entries) == (True, 120)


def test_more_entries_than_one_transaction_holds_are_refused(stack: AwsStack) -> None:
    entries = extend(None, [change(n) for n in range(50)], "2023-11-14T22:13:20+00:00")
    with pytest.raises(ValueError, match="at most 49"):
        audit_log(stack).append(entries, expected_head=None)


def test_missing_audit_table_is_storage_unavailable(stack: AwsStack, clock: FakeClock) -> None:
    stack.clients.dynamodb.delete_table(TableName=stack.audit_table)
    log = audit_log(stack)
    with pytest.raises(StorageUnavailableError):
        log.head()
    with pytest.raises(StorageUnavailableError):
        log.append(extend(None, [change(1)], "t"), expected_head=None)
