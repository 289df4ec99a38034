"""The invariant checker itself: clean after real processing, and it catches every kind of
damage the fault tests look for (a lost webhook, a second processing, an extra or missing
effect, an unfinished queue, a broken audit chain)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from payhook.backends.sqlite import (
    GroupCommitWriter,
    SqliteAuditLog,
    SqliteQueue,
    SqliteStore,
    initialize,
)
from payhook.core.chain_key import HmacChainKey
from payhook.providers import Provider
from payhook.service.ingest import Ingest
from payhook.service.process import Processor
from tests.conftest import AUDIT_TEST_KEY
from tests.reliability import fleet, invariants

AUDIT_KEY = HmacChainKey(AUDIT_TEST_KEY)


def _process_everything(db: Path, providers: dict[str, Provider]) -> None:
    queue, store = SqliteQueue(db), SqliteStore(db)
    processor = Processor(providers, store)
    while messages := queue.receive(50):
        for message in messages:
            processor.process(message.webhook_id)
    audit = SqliteAuditLog(db)
    while audit.drain(AUDIT_KEY):
        pass


@pytest.fixture
def processed(tmp_path: Path) -> tuple[Path, dict[str, Provider], set[str]]:
    """A database where every delivery (Stripe payments, some refunded) was processed."""
    db = tmp_path / "payhook.db"
    providers = fleet.build(fleet.sections(["stripe"], fleet.LOAD_TOLERANCE_SECONDS))
    batch = fleet.mixed(providers, 40, duplicate_ratio=0.0, seed=1)  # seed 1: 3 refunds
    initialize(db)
    writer = GroupCommitWriter(db)
    writer.start()
    ingest = Ingest(providers)
    for d in batch:
        ingest.receive(d.provider, d.request, writer)
    writer.stop()
    _process_everything(db, providers)
    return db, providers, {w for d in batch for w in d.webhook_ids}


def _check(db: Path, providers: dict[str, Provider], ids: set[str]) -> invariants.Report:
    return invariants.check(db, providers, acknowledged=ids, sent=ids)


def test_a_clean_run_has_no_problems(
    processed: tuple[Path, dict[str, Provider], set[str]],
) -> None:
    report = _check(*processed)
    assert report.problems == []
    assert report.processed == 40
    assert report.payment_versions > report.payments  # some payments changed twice
    assert report.outbox == report.payment_versions
    assert report.audit_ok


def _sql(statement: str) -> Callable[[sqlite3.Connection], None]:
    def damage(conn: sqlite3.Connection) -> None:
        conn.execute(statement)

    return damage


def _duplicate_outbox(conn: sqlite3.Connection) -> None:
    body = json.loads(conn.execute("SELECT body FROM outbox LIMIT 1").fetchone()[0])
    body["id"] = "pe_copy"
    conn.execute(
        "INSERT INTO outbox (event_id, body, created_at, next_attempt_at) VALUES (?, ?, 0, 0)",
        ("pe_copy", json.dumps(body)),
    )


@pytest.mark.parametrize(
    ("damage", "symptom"),
    [
        (_sql("DELETE FROM webhooks WHERE rowid = 1"), "acknowledged webhooks were lost"),
        (_sql("UPDATE webhooks SET status = 'received' WHERE rowid = 1"), "still unprocessed"),
        (_sql("DELETE FROM outbox WHERE rowid = 1"), "outbox rows differ"),
        (_duplicate_outbox, "outbox rows differ"),
        (_sql("DELETE FROM payments WHERE rowid = 1"), "payments never written"),
        (_sql("UPDATE audit SET data = '{}' WHERE seq = 2"), "audit chain broken"),
        (
            _sql("INSERT INTO queue (webhook_id, visible_at, enqueued_at) VALUES ('x', 0, 0)"),
            "not drained",
        ),
    ],
)
def test_damage_is_reported(
    processed: tuple[Path, dict[str, Provider], set[str]],
    damage: Callable[[sqlite3.Connection], None],
    symptom: str,
) -> None:
    db, providers, ids = processed
    conn = sqlite3.connect(db, isolation_level=None)
    damage(conn)
    conn.close()
    problems = _check(db, providers, ids).problems
    assert any(symptom in p for p in problems), problems


def test_a_webhook_processed_a_second_time_is_reported(
    processed: tuple[Path, dict[str, Provider], set[str]],
) -> None:
    db, providers, ids = processed
    assert SqliteQueue(db).replay(sorted(ids)[0])  # processed again, as a bug would
    _process_everything(db, providers)
    problems = _check(db, providers, ids).problems
    assert any("processed more than once" in p for p in problems), problems


def test_a_payment_written_twice_for_one_change_is_reported(
    processed: tuple[Path, dict[str, Provider], set[str]],
) -> None:
    db, providers, ids = processed
    conn = sqlite3.connect(db, isolation_level=None)
    row = conn.execute("SELECT provider, payment_id, record FROM payments LIMIT 1").fetchone()
    record = json.loads(row[2])
    record["version"] += 1
    conn.execute(
        "UPDATE payments SET version = version + 1, record = ? WHERE provider = ? AND"
        " payment_id = ?",
        (json.dumps(record), row[0], row[1]),
    )
    conn.close()
    SqliteAuditLog(db).drain(AUDIT_KEY)
    problems = _check(db, providers, ids).problems
    assert any("has version" in p for p in problems), problems
