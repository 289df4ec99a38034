"""The SQLite change feed drained by the audit use case (``service.audit.drain``): every change
chained once, in order, with one MAC per drain, consumed in the same write."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from payhook.backends.sqlite import GroupCommitWriter, SqliteAuditLog, connect, initialize
from payhook.backends.sqlite.changes import SqliteChangeFeed
from payhook.core.audit import extend
from payhook.core.chain_key import HmacChainKey
from payhook.errors import ConcurrencyError
from payhook.service.audit import drain, run_drain, verify_log
from tests.backends.sqlite.helpers import stored
from tests.conftest import FakeClock, count_rows

KEY = HmacChainKey("test-audit-key-for-the-change-feed")


@pytest.fixture
def writer(db_path: str) -> Iterator[GroupCommitWriter]:
    initialize(db_path)
    w = GroupCommitWriter(db_path)
    w.start()
    yield w
    w.stop()


@pytest.fixture
def feed(db_path: str, writer: GroupCommitWriter) -> Iterator[SqliteChangeFeed]:
    f = SqliteChangeFeed(db_path, writer=writer)
    yield f
    f.close()


def test_a_drain_chains_the_oldest_changes_in_order_and_consumes_them(
    feed: SqliteChangeFeed, writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    webhooks = [stored(clock) for _ in range(5)]
    writer.store(webhooks)
    assert drain(feed, KEY, limit=3, clock=clock) == 3
    assert drain(feed, KEY, limit=3, clock=clock) == 2
    assert drain(feed, KEY, limit=3, clock=clock) == 0
    entries = list(SqliteAuditLog(db_path).entries())
    assert [e.entity_key for e in entries] == [w.webhook_id for w in webhooks]
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert [e.mac is not None for e in entries] == [False, False, True, False, True]
    assert count_rows(db_path, "changes") == 0
    assert verify_log(SqliteAuditLog(db_path), KEY).ok


def test_an_entry_keeps_the_change_as_the_trigger_wrote_it(
    feed: SqliteChangeFeed, writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    webhook = stored(clock)
    writer.store([webhook])
    conn = connect(db_path)
    [written] = conn.execute("SELECT data FROM changes").fetchone()
    drain(feed, KEY, clock=clock)
    [kept] = conn.execute("SELECT data FROM audit").fetchone()
    assert kept == written  # the trigger's JSON text, not a re-encoding of it
    [entry] = SqliteAuditLog(db_path).entries()
    assert entry.data == {
        "provider": "stripe",
        "eventId": webhook.event_id,
        "eventType": webhook.event_type,
        "status": "received",
    }


def test_chaining_after_another_writer_moved_the_head_writes_nothing(
    feed: SqliteChangeFeed, writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    writer.store([stored(clock)])
    changes = feed.pending(10)
    head = feed.head()
    entries = extend(head, changes, "2026-01-01T00:00:00Z", KEY)
    writer.store([stored(clock)])
    assert drain(feed, KEY, clock=clock) == 2  # the other writer: both changes chained
    with pytest.raises(ConcurrencyError):
        feed.chain(changes, entries, head)
    assert count_rows(db_path, "audit") == 2
    assert verify_log(SqliteAuditLog(db_path), KEY).ok


def test_entries_must_match_the_changes_one_for_one(
    feed: SqliteChangeFeed, writer: GroupCommitWriter, clock: FakeClock
) -> None:
    writer.store([stored(clock), stored(clock)])
    changes = feed.pending(10)
    entries = extend(feed.head(), changes[:1], "2026-01-01T00:00:00Z", KEY)
    with pytest.raises(ValueError, match="got 1 entries for 2 changes"):
        feed.chain(changes, entries, feed.head())


def test_the_audit_worker_drains_what_is_pending_and_stops_when_told(
    feed: SqliteChangeFeed, writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    writer.store([stored(clock) for _ in range(7)])
    stop = threading.Event()
    stop.set()  # already told to stop: it still drains what is pending first
    run_drain(feed, KEY, stop, poll_seconds=0.01, clock=clock)
    assert count_rows(db_path, "audit") == 7
    assert count_rows(db_path, "changes") == 0
