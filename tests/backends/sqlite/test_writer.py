"""Group-commit ingest: webhook and queue rows together, duplicates once, failures loud.

The writer's priority rule (what each group carries) is in test_writer_rule.py."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace

import pytest

from payhook.backends.sqlite import GroupCommitWriter, SqliteStore, connect, initialize
from payhook.core.model import Stored
from payhook.errors import PayloadError, StorageUnavailableError
from tests.backends.sqlite.helpers import stored
from tests.backends.sqlite.pausing import paused_after_first_group
from tests.conftest import FakeClock, count_rows


@pytest.fixture
def writer(db_path: str, clock: FakeClock):
    initialize(db_path)
    w = GroupCommitWriter(db_path)
    w.start()
    yield w
    w.stop()


def test_stores_the_webhook_and_its_queue_row_together(
    writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    webhook = stored(clock)
    assert writer.store([webhook]) == [Stored.NEW]
    assert count_rows(db_path, "webhooks") == 1
    assert count_rows(db_path, "queue") == 1
    row = SqliteStore(db_path).get_webhook(webhook.webhook_id)
    assert row is not None
    assert row.payload == webhook.payload
    assert row.status == "received"


def test_a_duplicate_is_reported_and_changes_nothing(
    writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    webhook = stored(clock)
    writer.store([webhook])
    assert writer.store([webhook]) == [Stored.DUPLICATE]
    assert writer.store([webhook, webhook]) == [Stored.DUPLICATE, Stored.DUPLICATE]
    assert count_rows(db_path, "webhooks") == 1
    assert count_rows(db_path, "queue") == 1


def test_the_same_event_twice_in_one_batch_is_stored_once(
    writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    webhook = stored(clock)
    assert writer.store([webhook, webhook]) == [Stored.NEW, Stored.DUPLICATE]
    assert count_rows(db_path, "queue") == 1


def test_concurrent_requests_share_commits(
    writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    webhooks = [stored(clock) for _ in range(200)]
    barrier = threading.Barrier(8)
    results: list[list[Stored]] = []

    def submit(chunk: list) -> None:
        barrier.wait()
        futures = [writer.submit([w]) for w in chunk]
        results.extend(f.result() for f in futures)

    threads = [threading.Thread(target=submit, args=(webhooks[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    assert all(r == [Stored.NEW] for r in results)
    assert count_rows(db_path, "webhooks") == 200
    assert count_rows(db_path, "queue") == 200
    assert writer.webhooks == 200
    assert writer.groups < 200  # several requests rode on one commit


def test_a_failed_commit_is_reported_and_leaves_nothing_half_written(
    db_path: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    initialize(db_path)
    monkeypatch.setattr(GroupCommitWriter, "busy_timeout_seconds", 0.05)
    writer = GroupCommitWriter(db_path)
    writer.start()
    try:
        conn = connect(db_path)
        conn.execute("BEGIN IMMEDIATE")  # the storage is unavailable: locked by someone else
        futures = [writer.submit([stored(clock)]) for _ in range(5)]
        for future in futures:
            with pytest.raises(StorageUnavailableError):
                future.result()
        conn.rollback()
        assert count_rows(db_path, "webhooks") == 0
        assert count_rows(db_path, "queue") == 0
        assert writer.store([stored(clock)]) == [Stored.NEW]  # it keeps working afterwards
    finally:
        writer.stop()


def test_one_event_the_database_refuses_fails_alone_and_its_group_is_stored(
    writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    # A row SQLite refuses (here a trigger stands in for any constraint) fails the shared
    # INSERT: the group's members are then committed one by one, so only that one fails.
    conn = connect(db_path)
    conn.execute(
        "CREATE TRIGGER refuse_one BEFORE INSERT ON webhooks WHEN NEW.event_id = 'evt_bad' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    good = [stored(clock) for _ in range(20)]
    bad = replace(stored(clock), event_id="evt_bad")
    huge_time = replace(stored(clock), occurred_at=10**400)  # type: ignore[arg-type]
    with paused_after_first_group(writer) as carried:  # so that every delivery joins one group
        futures = [writer.submit([w]) for w in (*good[:10], bad, huge_time, *good[10:])]
    results = [f.exception() or f.result() for f in futures]
    # The shared group failed: each delivery went again alone; only the two failed.
    assert [(g.deliveries, g.committed) for g in carried[1:]] == (
        [(1, True)] * 10 + [(1, False)] * 2 + [(1, True)] * 10
    )
    assert results[:10] + results[12:] == [[Stored.NEW]] * 20
    assert all(isinstance(r, PayloadError) for r in results[10:12])
    assert count_rows(db_path, "webhooks") == 20
    assert count_rows(db_path, "queue") == 20


def test_a_stopped_writer_refuses_instead_of_hanging(db_path: str, clock: FakeClock) -> None:
    initialize(db_path)
    w = GroupCommitWriter(db_path)
    with pytest.raises(StorageUnavailableError):
        w.store([stored(clock)])


def test_stop_commits_what_was_queued(db_path: str, clock: FakeClock) -> None:
    initialize(db_path)
    w = GroupCommitWriter(db_path)
    w.start()
    futures = [w.submit([stored(clock)]) for _ in range(50)]
    w.stop()
    assert all(f.result() == [Stored.NEW] for f in futures)
    assert count_rows(db_path, "webhooks") == 50


def test_every_write_commits_fully_synchronously(writer: GroupCommitWriter) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[int, str]:
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        return synchronous, conn.execute("PRAGMA journal_mode").fetchone()[0]

    assert writer.call(pragmas) == (2, "wal")  # FULL


def _insert_marker(name: str):  # type: ignore[no-untyped-def]
    def write(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO dead_letters VALUES (?, 'marker', 0, 0)", (name,))
        return name

    return write


def test_a_call_runs_in_the_group_transaction_and_returns_its_result(
    writer: GroupCommitWriter, db_path: str
) -> None:
    assert writer.call(_insert_marker("a")) == "a"
    assert count_rows(db_path, "dead_letters") == 1


def test_a_failing_call_undoes_only_its_own_writes(
    writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO dead_letters VALUES ('half', 'marker', 0, 0)")
        raise ValueError("boom")

    # Submitted together so that they share one group with an ingest request.
    barrier = threading.Barrier(3)
    outcomes: dict[str, object] = {}

    def run(name: str, fn) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            outcomes[name] = fn()
        except Exception as exc:
            outcomes[name] = exc

    threads = [
        threading.Thread(target=run, args=("ok", lambda: writer.call(_insert_marker("ok")))),
        threading.Thread(target=run, args=("bad", lambda: writer.call(half_then_fail))),
        threading.Thread(target=run, args=("ingest", lambda: writer.store([stored(clock)]))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes["ok"] == "ok"
    assert isinstance(outcomes["bad"], ValueError)
    assert outcomes["ingest"] == [Stored.NEW]
    conn = connect(db_path)
    names = {row[0] for row in conn.execute("SELECT webhook_id FROM dead_letters")}
    assert names == {"ok"}
    assert count_rows(db_path, "webhooks") == 1


def test_a_call_on_a_stopped_writer_is_refused(db_path: str, clock: FakeClock) -> None:
    initialize(db_path)
    with pytest.raises(StorageUnavailableError):
        GroupCommitWriter(db_path).call(_insert_marker("x"))


def test_a_call_mixing_stored_and_new_webhooks_flags_each_correctly(
    writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    old = [stored(clock) for _ in range(3)]
    writer.store(old)
    new = [stored(clock) for _ in range(4)]
    mixed = [new[0], old[1], new[1], old[0], new[2], new[2], old[2], new[3]]
    assert writer.store(mixed) == [
        Stored.NEW,
        Stored.DUPLICATE,
        Stored.NEW,
        Stored.DUPLICATE,
        Stored.NEW,
        Stored.DUPLICATE,
        Stored.DUPLICATE,
        Stored.NEW,
    ]
    assert count_rows(db_path, "webhooks") == 7
    assert count_rows(db_path, "queue") == 7
