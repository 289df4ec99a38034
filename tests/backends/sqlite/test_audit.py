"""Triggers feed every webhook and payment change into the authenticated audit chain; editing
the database without the key, or a payment row behind the ledger's back, fails verification."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from payhook.backends.sqlite import (
    GroupCommitWriter,
    SqliteAuditLog,
    SqliteStore,
    connect,
    initialize,
)
from payhook.backends.sqlite.audit import INSERT_ENTRY, entry_values
from payhook.backends.sqlite.schema import migrations
from payhook.core.audit import GENESIS_HASH, AuditEntry, compute_hash
from payhook.core.chain_key import HmacChainKey
from payhook.core.ports import ProcessingCommit
from payhook.service.audit import AuditReport, verify_log
from payhook.service.process import Processor
from tests.backends.sqlite.helpers import stored, stripe_provider
from tests.conftest import FakeClock

KEY = HmacChainKey("test-audit-key-for-the-sqlite-backend")


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
    assert log.drain(KEY, clock=clock) == 4  # 3 inserts + 1 status change
    return log


@pytest.fixture
def payments(db_path: str, clock: FakeClock) -> SqliteAuditLog:
    """Two Stripe payments processed for real (ledger rows written by the processor), audited."""
    initialize(db_path)
    writer = GroupCommitWriter(db_path)
    writer.start()
    webhooks = [stored(clock, payment_id=f"pi_{n}", amount=1000 * n) for n in (1, 2)]
    writer.store(webhooks)
    writer.stop()
    processor = Processor({"stripe": stripe_provider(clock)}, SqliteStore(db_path), clock)
    for webhook in webhooks:
        processor.process(webhook.webhook_id)
    log = SqliteAuditLog(db_path)
    log.drain(KEY, clock=clock)
    assert verify(log).ok
    return log


def verify(log: SqliteAuditLog, anchor: tuple[int, str] | None = None) -> AuditReport:
    """What ``payhook audit verify`` runs: the chain and the payment rows, in one snapshot."""
    with log.snapshot():
        return verify_log(log, KEY, log, anchor=anchor)


def rewrite(db_path: str, entries: list[AuditEntry]) -> None:
    """What someone with write access to the database but not the key can do: replace the
    chain with ``entries`` re-hashed and re-linked, and move the recorded head to match (MACs
    are kept as they were; they cannot make new ones)."""
    chained: list[AuditEntry] = []
    for entry in entries:
        prev = chained[-1].hash if chained else GENESIS_HASH
        relinked = dataclasses.replace(entry, seq=len(chained) + 1, prev_hash=prev)
        chained.append(dataclasses.replace(relinked, hash=compute_hash(relinked)))
    conn = connect(db_path)
    conn.execute("DELETE FROM audit")
    conn.executemany(INSERT_ENTRY, [entry_values(e) for e in chained])
    conn.execute("UPDATE audit_head SET seq = ?, hash = ?", (chained[-1].seq, chained[-1].hash))
    conn.close()


def test_every_change_becomes_one_entry_and_the_feed_is_consumed(
    audit: SqliteAuditLog, db_path: str
) -> None:
    entries = list(audit.entries())
    assert [e.action for e in entries] == ["insert", "insert", "insert", "modify"]
    assert entries[-1].data["status"] == "processed"
    assert entries[-1].data["previousStatus"] == "received"
    assert audit.drain(KEY) == 0
    conn = connect(db_path)
    assert conn.execute("SELECT count(*) FROM changes").fetchone()[0] == 0


def test_the_head_of_each_drain_carries_the_mac(audit: SqliteAuditLog) -> None:
    assert [e.mac is not None for e in audit.entries()] == [False, False, False, True]
    assert audit.head() == list(audit.entries())[-1]


def test_entries_carry_no_payload(audit: SqliteAuditLog) -> None:
    for entry in audit.entries():
        assert set(entry.data) <= {"provider", "eventId", "eventType", "status", "previousStatus"}


def test_the_trail_verifies(audit: SqliteAuditLog) -> None:
    report = verify(audit)
    assert report.ok
    assert report.chain.entries == 4
    assert report.chain.macs_verified == 1


def test_the_trail_does_not_verify_with_another_key(audit: SqliteAuditLog) -> None:
    report = verify_log(audit, HmacChainKey("another-key-another-key-another-key"))
    assert not report.ok
    assert report.chain.first_bad_seq == 4


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit SET data = json_set(data, '$.status', 'dead') WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 4",
        "UPDATE audit SET entity_key = 'wh_other' WHERE seq = 1",
        "INSERT INTO audit SELECT 5, recorded_at, entity, entity_key, action, data, source_id,"
        " hash, hash, mac FROM audit WHERE seq = 4",
        "UPDATE audit SET mac = NULL WHERE seq = 4",
        # Its first digit changed, always (a fixed prefix would match 1 MAC in 256).
        "UPDATE audit SET mac = CASE substr(mac, 1, 1) WHEN 'a' THEN 'b' ELSE 'a' END"
        " || substr(mac, 2) WHERE seq = 4",
    ],
)
def test_tampering_in_the_database_is_detected(
    audit: SqliteAuditLog, db_path: str, tamper: str
) -> None:
    conn = connect(db_path)
    conn.execute(tamper)
    report = verify_log(SqliteAuditLog(db_path), KEY)
    assert not report.ok


def test_edited_entry_with_every_hash_and_the_recorded_head_recomputed_fails(
    audit: SqliteAuditLog, db_path: str
) -> None:
    entries = list(audit.entries())
    entries[1] = dataclasses.replace(entries[1], data={**entries[1].data, "status": "dead"})
    rewrite(db_path, entries)

    log = SqliteAuditLog(db_path)
    assert [compute_hash(e) == e.hash for e in log.entries()] == [True] * 4
    assert log.recorded_head() == (4, log.head().hash)  # type: ignore[union-attr]
    report = verify_log(log, KEY)
    assert not report.ok
    assert report.chain.reason == "MAC does not match: rewritten without the key"


def test_deleted_entry_with_the_chain_rebuilt_fails(audit: SqliteAuditLog, db_path: str) -> None:
    entries = list(audit.entries())
    del entries[1]
    rewrite(db_path, entries)
    report = verify_log(SqliteAuditLog(db_path), KEY)
    assert not report.ok
    assert report.chain.entries == 2  # links and hashes hold; the head's MAC does not


def test_a_payment_row_edited_without_a_new_version_fails_naming_the_payment(
    payments: SqliteAuditLog, db_path: str
) -> None:
    conn = connect(db_path)
    conn.execute(
        "UPDATE payments SET status = 'refunded', amount_refunded = 1000 WHERE payment_id = 'pi_1'"
    )
    assert payments.drain(KEY) == 0  # the version did not move: no trigger, no entry

    report = verify(payments)
    assert report.chain.ok
    assert not report.ok
    [problem] = report.problems
    assert problem.payment == "stripe/pi_1"
    assert "row does not match the ledger its record's events derive" in problem.reason
    assert "status row 'refunded', record 'succeeded'" in problem.reason


def test_an_edit_smuggled_into_the_change_feed_is_caught_by_its_repeated_version(
    payments: SqliteAuditLog, db_path: str
) -> None:
    conn = connect(db_path)
    row = conn.execute("SELECT record FROM payments WHERE payment_id = 'pi_2'").fetchone()
    record = json.loads(row[0])
    for event in record["events"]:
        event["amount"] = 1
    conn.execute(
        "UPDATE payments SET amount = 1, record = ? WHERE payment_id = 'pi_2'",
        (json.dumps(record),),
    )
    # A change row matching the edit, for the audit worker to chain as if a trigger wrote it.
    data = {"status": "succeeded", "amount": 1, "currency": "USD", "amountRefunded": 0}
    conn.execute(
        "INSERT INTO changes (entity, entity_key, action, data)"
        " VALUES ('payment', 'stripe/pi_2', 'modify', ?)",
        (json.dumps({**data, "version": 1}),),
    )
    for drained in (False, True):
        if drained:
            assert payments.drain(KEY) == 1
        report = verify(payments)
        assert report.chain.ok
        [problem] = report.problems
        assert problem.payment == "stripe/pi_2"
        assert "records version 1 after version 1: a change the ledger did not make" in (
            problem.reason
        )


def test_a_row_and_its_record_edited_together_still_disagree_with_the_audit_trail(
    payments: SqliteAuditLog, db_path: str
) -> None:
    conn = connect(db_path)
    row = conn.execute("SELECT record FROM payments WHERE payment_id = 'pi_2'").fetchone()
    record = json.loads(row[0])
    for event in record["events"]:
        event["amount"] = 1
    conn.execute(
        "UPDATE payments SET amount = 1, record = ? WHERE payment_id = 'pi_2'",
        (json.dumps(record),),
    )
    report = verify(payments)
    [problem] = report.problems
    assert problem.payment == "stripe/pi_2"
    assert problem.reason == "row does not match its latest audit entry: amount row 1, audit 2000"


def test_a_deleted_payment_row_is_reported(payments: SqliteAuditLog, db_path: str) -> None:
    connect(db_path).execute("DELETE FROM payments WHERE payment_id = 'pi_1'")
    [problem] = verify(payments).problems
    assert (problem.payment, problem.reason) == ("stripe/pi_1", "audited, but its row is gone")


def test_a_payment_with_no_audit_entry_is_reported(payments: SqliteAuditLog, db_path: str) -> None:
    conn = connect(db_path)
    conn.execute("DELETE FROM audit WHERE entity = 'payment'")
    conn.execute("DELETE FROM audit_head")
    report = verify(payments)
    assert not report.ok  # the chain itself no longer holds
    conn.execute("DELETE FROM audit")
    report = verify(payments)
    assert report.chain.ok  # an emptied chain is consistent ...
    assert {p.reason for p in report.problems} == {"no audit entry records it"}  # ... but not this


def test_a_version_bump_not_yet_drained_is_not_a_mismatch(
    payments: SqliteAuditLog, db_path: str
) -> None:
    conn = connect(db_path)
    row = conn.execute("SELECT record FROM payments WHERE payment_id = 'pi_1'").fetchone()
    record = json.loads(row[0])
    record["version"] = 2
    conn.execute(
        "UPDATE payments SET version = 2, record = ? WHERE payment_id = 'pi_1'",
        (json.dumps(record),),
    )
    assert verify(payments).ok  # judged against the pending change the trigger wrote
    assert payments.drain(KEY) == 1
    assert verify(payments).ok


def test_the_anchor_catches_a_cut_back_to_an_earlier_authenticated_head(
    payments: SqliteAuditLog, db_path: str, clock: FakeClock
) -> None:
    earlier = payments.head()
    assert earlier is not None
    conn = connect(db_path)
    conn.execute("UPDATE webhooks SET status = 'dead' WHERE rowid = 1")
    assert payments.drain(KEY, clock=clock) == 1
    anchor = (payments.head().seq, payments.head().hash)  # type: ignore[union-attr]
    assert verify(payments, anchor=anchor).ok

    conn.execute("DELETE FROM audit WHERE seq > ?", (earlier.seq,))
    conn.execute("UPDATE audit_head SET seq = ?, hash = ?", (earlier.seq, earlier.hash))
    assert verify(payments).ok  # a cut back to an earlier authenticated head verifies ...
    report = verify(payments, anchor=anchor)
    assert not report.ok  # ... except against a head anchored outside the database
    assert report.chain.reason == f"chain ends before the anchored head (entry {anchor[0]})"


def test_a_database_audited_before_keying_verifies_once_the_next_append_is_keyed(
    db_path: str, clock: FakeClock
) -> None:
    conn = connect(db_path)
    # The database as payhook created it before the chain was keyed (schema version 2).
    for number, sql in migrations():
        if number <= 2:
            conn.executescript(sql)
    conn.execute("PRAGMA user_version = 2")
    entry = AuditEntry(1, "t", "webhook", "wh_0", "insert", {"status": "received"}, "c0", "", "")
    entry = dataclasses.replace(entry, prev_hash=GENESIS_HASH)
    entry = dataclasses.replace(entry, hash=compute_hash(entry))
    conn.execute(
        "INSERT INTO audit VALUES (1, ?, 'webhook', 'wh_0', 'insert', ?, 'c0', ?, ?)",
        (entry.recorded_at, json.dumps(entry.data), entry.prev_hash, entry.hash),
    )
    conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 1, ?)", (entry.hash,))
    initialize(db_path)  # migrates: the old entry has no MAC
    log = SqliteAuditLog(db_path)
    assert list(log.entries()) == [entry]
    assert not verify_log(log, KEY).ok  # nothing vouches for the old entry yet

    writer = GroupCommitWriter(db_path)
    writer.start()
    writer.store([stored(clock)])
    writer.stop()
    assert log.drain(KEY, clock=clock) == 1  # MACs the new head
    report = verify_log(log, KEY)
    assert (report.ok, report.chain.entries, report.chain.macs_verified) == (True, 2, 1)


def test_snapshot_ends_its_read_transaction(payments: SqliteAuditLog) -> None:
    with payments.snapshot():
        assert len(list(payments.payment_rows())) == 2
        inside = payments.conn.in_transaction
    after = payments.conn.in_transaction
    assert (inside, after) == (True, False)
    with pytest.raises(sqlite3.OperationalError):
        payments.conn.execute("COMMIT")
