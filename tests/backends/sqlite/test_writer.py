"""Group-commit ingest: webhook and queue rows together, duplicates once, failures loud."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import replace

import pytest

from payhook.backends.sqlite import GroupCommitWriter, SqliteStore, connect, initialize
from payhook.core.model import Stored
from payhook.errors import PayloadError, StorageUnavailableError
from tests.backends.sqlite.helpers import stored
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
    assert writer.ingest_waiting == 0  # every request was answered


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
    # Held at the lock, so that every delivery joins one group.
    conn.execute("BEGIN IMMEDIATE")
    futures = [writer.submit([w]) for w in (*good[:10], bad, huge_time, *good[10:])]
    while writer.ingest_waiting:
        time.sleep(0.001)
    conn.rollback()
    results = [f.exception() or f.result() for f in futures]
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


def test_the_ingest_connection_is_fully_synchronous(writer: GroupCommitWriter) -> None:
    assert writer._conn is not None
    assert writer._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert writer._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert isinstance(writer._conn, sqlite3.Connection)


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


def test_deliveries_one_at_a_time_never_saturate_the_writer(
    writer: GroupCommitWriter, clock: FakeClock
) -> None:
    for _ in range(20):
        writer.store([stored(clock)])
        assert not writer.saturated


def _commit_while_waiting(writer: GroupCommitWriter, clock: FakeClock, waiting: int) -> bool:
    """Commit one delivery while ``waiting`` more queue up behind it; all are answered."""
    # Hold the writer inside a delivery's commit, so the next deliveries wait behind it.
    conn = connect(writer.path)
    conn.execute("BEGIN IMMEDIATE")  # the writer's INSERT waits for this lock
    first = writer.submit([stored(clock)])
    while writer.ingest_waiting:  # until the writer has taken the first delivery
        time.sleep(0.001)
    rest = [writer.submit([stored(clock)]) for _ in range(waiting)]
    conn.rollback()
    conn.close()
    assert first.result() == [Stored.NEW]
    saturated_when_first_committed = writer.saturated
    assert [f.result() for f in rest] == [[Stored.NEW]] * waiting
    return saturated_when_first_committed


def test_a_few_deliveries_at_the_writer_do_not_saturate_it(
    writer: GroupCommitWriter, clock: FakeClock
) -> None:
    # One committing, backlog - 2 behind it: one short of the backlog.
    assert not _commit_while_waiting(writer, clock, writer.saturation_backlog - 2)


def test_a_backlog_of_deliveries_saturates_the_writer_for_a_while(
    writer: GroupCommitWriter, clock: FakeClock
) -> None:
    writer.saturation_hold_seconds = 0.2  # type: ignore[misc]
    assert _commit_while_waiting(writer, clock, writer.saturation_backlog - 1)
    time.sleep(0.3)
    assert not writer.saturated  # the burst is over: background work may resume


def test_a_full_group_saturates_the_writer_even_with_nothing_behind_it(
    writer: GroupCommitWriter, clock: FakeClock
) -> None:
    # Every connection's delivery queued behind a commit, then all taken in one group.
    marks: list[tuple[int, float]] = []  # (group size, when saturation was last marked)
    commit = writer._commit

    def recording(group: list) -> None:
        commit(group)
        marks.append((len(group), writer._saturated_at))

    writer._commit = recording  # type: ignore[method-assign]
    _commit_while_waiting(writer, clock, writer.saturation_backlog)
    (_, after_first), (size, after_group) = marks
    assert size == writer.saturation_backlog
    assert writer.ingest_waiting == 0
    assert after_group > after_first  # the full group marked it again, with none behind


def test_deliveries_piled_up_behind_background_work_do_not_saturate_it(
    writer: GroupCommitWriter, clock: FakeClock
) -> None:
    # A long processing commit holds the writer while deliveries arrive at a modest rate;
    # pausing processing for them would only make its next commit longer.
    release = threading.Event()
    background = writer.submit_call(lambda conn: release.wait(5))
    time.sleep(0.05)  # the writer is inside the call
    group = [writer.submit([stored(clock)]) for _ in range(writer.saturation_backlog * 2)]
    release.set()
    assert background.result() is True
    assert all(f.result() == [Stored.NEW] for f in group)
    assert not writer.saturated
