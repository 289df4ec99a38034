"""Triggers feed every webhook and payment change into the hash-chained audit table."""

from __future__ import annotations

import json

import pytest

from payhook.backends.sqlite import (
    GroupCommitWriter,
    SqliteAuditLog,
    SqliteStore,
    connect,
    initialize,
)
from payhook.core.ports import ProcessingCommit
from payhook.service.audit import verify_log
from tests.backends.sqlite.helpers import stored
from tests.conftest import FakeClock


@pytest.fixture
def audit(db_path: str, clock: FakeClock) -> SqliteAuditLog:
    initialize(db_path)
    writer = GroupCommitWriter(db_path)
    writer.start()
    webhooks = [stored(clock) for _ in range(3)]
    writer.store(webhooks)
    writer.stop()
    SqliteStore(db_path).commit(ProcessingCommit(webhooks[0].webhook_id, clock()))
    log = SqliteAuditLog(db_path)
    assert log.drain(clock=clock) == 4  # 3 inserts + 1 status change
    return log


def test_every_change_becomes_one_entry_and_the_feed_is_consumed(
    audit: SqliteAuditLog, db_path: str
) -> None:
    entries = list(audit.entries())
    assert [e.action for e in entries] == ["insert", "insert", "insert", "modify"]
    assert entries[-1].data["status"] == "processed"
    assert entries[-1].data["previousStatus"] == "received"
    assert audit.drain() == 0
    conn = connect(db_path)
    assert conn.execute("SELECT count(*) FROM changes").fetchone()[0] == 0


def test_entries_carry_no_payload(audit: SqliteAuditLog) -> None:
    for entry in audit.entries():
        assert set(entry.data) <= {"provider", "eventId", "eventType", "status", "previousStatus"}


def test_the_trail_verifies(audit: SqliteAuditLog) -> None:
    report = verify_log(audit)
    assert report.ok
    assert report.entries == 4


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit SET data = json_set(data, '$.status', 'dead') WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 4",
        "UPDATE audit SET entity_key = 'wh_other' WHERE seq = 1",
        "INSERT INTO audit SELECT 5, recorded_at, entity, entity_key, action, data, source_id,"
        " hash, hash FROM audit WHERE seq = 4",
    ],
)
def test_tampering_in_the_database_is_detected(
    audit: SqliteAuditLog, db_path: str, tamper: str
) -> None:
    conn = connect(db_path)
    conn.execute(tamper)
    report = verify_log(SqliteAuditLog(db_path))
    assert not report.ok


def test_payment_changes_are_audited_too(
    audit: SqliteAuditLog, db_path: str, clock: FakeClock
) -> None:
    conn = connect(db_path)
    record = {"provider": "stripe", "paymentId": "pi_1"}
    conn.execute(
        "INSERT INTO payments (provider, payment_id, status, currency, amount, amount_refunded,"
        " updated_at, version, record) VALUES ('stripe', 'pi_1', 'succeeded', 'USD', 2000, 0,"
        " 1, 1, ?)",
        (json.dumps(record),),
    )
    conn.execute("UPDATE payments SET status = 'refunded', amount_refunded = 2000, version = 2")
    assert audit.drain(clock=clock) == 2
    last = list(audit.entries())[-2:]
    assert [e.entity for e in last] == ["payment", "payment"]
    assert last[1].data == {
        "status": "refunded",
        "amount": 2000,
        "currency": "USD",
        "amountRefunded": 2000,
        "version": 2,
        "previousStatus": "succeeded",
    }
    assert verify_log(audit).ok
