"""The outbox store: claims with a lease, delivered and failed attempts, giving up after
``max_attempts``, and an operator's list of failed rows and retry; each write through the
single writer when one is given, in its own transaction otherwise."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from payhook.backends.sqlite import GroupCommitWriter, Transaction, connect, initialize
from payhook.backends.sqlite.outbox import (
    FailedAttempt,
    FailedDelivery,
    OutboxEvent,
    SqliteOutbox,
)
from payhook.errors import ConfigError, StorageUnavailableError
from tests.conftest import FakeClock

LEASE = 20.0


def publish(path: str, event_id: str, at: float, marker: str = "") -> dict[str, Any]:
    """An outbox row as SqliteStore.commit writes it."""
    event: dict[str, Any] = {
        "id": event_id,
        "type": "payment.updated",
        "payment": {"status": "succeeded"},
    }
    if marker:
        event["note"] = marker
    with closing(connect(path)) as conn, Transaction(conn):
        conn.execute(
            "INSERT INTO outbox (event_id, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?)",
            (event_id, json.dumps(event), at, at),
        )
    return event


def outbox_row(path: str, event_id: str) -> sqlite3.Row:
    with closing(connect(path)) as conn:
        query = "SELECT * FROM outbox WHERE event_id = ?"
        row: sqlite3.Row | None = conn.execute(query, (event_id,)).fetchone()
    assert row is not None
    return row


@pytest.fixture
def database(db_path: str) -> str:
    initialize(db_path)
    return db_path


@pytest.fixture
def outbox(database: str, clock: FakeClock) -> Iterator[SqliteOutbox]:
    store = SqliteOutbox(database, max_attempts=3, clock=clock)
    yield store
    store.close()


def give_up(outbox: SqliteOutbox, event_id: str) -> None:
    for _ in range(outbox.max_attempts):
        assert outbox.record_failure(event_id, "HTTP 503", 1.0) is not None


def test_claims_the_oldest_due_row_and_leases_it(
    database: str, outbox: SqliteOutbox, clock: FakeClock
) -> None:
    later = publish(database, "pe_later", clock() + 5)
    due = publish(database, "pe_due", clock())

    assert outbox.claim(LEASE) == OutboxEvent("pe_due", json.dumps(due), 0)
    assert outbox_row(database, "pe_due")["next_attempt_at"] == clock() + LEASE
    assert outbox.claim(LEASE) is None  # pe_due is leased, pe_later not due yet
    clock.advance(5)
    assert outbox.claim(LEASE) == OutboxEvent("pe_later", json.dumps(later), 0)


def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(
    database: str, clock: FakeClock
) -> None:
    publish(database, "pe_1", clock())
    first, second = (SqliteOutbox(database, clock=clock) for _ in range(2))
    assert first.claim(LEASE) is not None
    assert second.claim(LEASE) is None  # a second forwarder finds nothing due
    clock.advance(LEASE)  # the first one died before marking it: it is sent again
    claimed = second.claim(LEASE)
    assert claimed is not None
    assert (claimed.event_id, claimed.attempts) == ("pe_1", 0)
    first.close()
    second.close()


def test_a_delivered_row_is_never_claimed_again(
    database: str, outbox: SqliteOutbox, clock: FakeClock
) -> None:
    delivered_at = clock()
    publish(database, "pe_1", delivered_at)
    assert outbox.claim(LEASE) is not None
    assert outbox.mark_delivered("pe_1")
    row = outbox_row(database, "pe_1")
    assert (row["delivered_at"], row["attempts"], row["last_error"]) == (delivered_at, 1, None)
    clock.advance(86400)
    assert outbox.claim(LEASE) is None
    assert not outbox.mark_delivered("pe_1")  # a second mark changes nothing
    assert outbox_row(database, "pe_1")["delivered_at"] == delivered_at


def test_a_failure_schedules_the_next_attempt_and_the_last_one_gives_up(
    database: str, outbox: SqliteOutbox, clock: FakeClock
) -> None:
    publish(database, "pe_1", clock())
    results, errors, delays = [], [], []
    for delay in (2.0, 4.0, 8.0):
        assert outbox.claim(LEASE) is not None
        results.append(outbox.record_failure("pe_1", "HTTP 500", delay))
        row = outbox_row(database, "pe_1")
        errors.append(row["last_error"])
        delays.append(row["next_attempt_at"] - clock())
        clock.now = row["next_attempt_at"]
    assert results == [FailedAttempt(1, False), FailedAttempt(2, False), FailedAttempt(3, True)]
    assert errors == ["HTTP 500", "HTTP 500", "gave up after 3 attempts: HTTP 500"]
    assert delays == [2.0, 4.0, 0.0]  # the last one schedules nothing
    row = outbox_row(database, "pe_1")
    assert (row["attempts"], row["delivered_at"]) == (3, None)
    clock.advance(86400 * 30)
    assert outbox.claim(LEASE) is None  # given up: never due again on its own


def test_a_failure_of_a_row_delivered_meanwhile_changes_nothing(
    database: str, outbox: SqliteOutbox, clock: FakeClock
) -> None:
    publish(database, "pe_1", clock())
    assert outbox.mark_delivered("pe_1")
    assert outbox.record_failure("pe_1", "HTTP 500", 5.0) is None
    assert outbox.record_failure("pe_missing", "HTTP 500", 5.0) is None
    row = outbox_row(database, "pe_1")
    assert (row["attempts"], row["last_error"]) == (1, None)


def test_lists_the_rows_given_up_on_oldest_first(
    database: str, outbox: SqliteOutbox, clock: FakeClock
) -> None:
    created = clock()
    for offset, event_id in enumerate(("pe_old", "pe_new", "pe_pending", "pe_done")):
        publish(database, event_id, created + offset)
    give_up(outbox, "pe_new")  # given up on first, but created later
    give_up(outbox, "pe_old")
    outbox.record_failure("pe_pending", "HTTP 503", 1.0)
    outbox.mark_delivered("pe_done")

    error = "gave up after 3 attempts: HTTP 503"
    assert outbox.failed() == [
        FailedDelivery("pe_old", 3, error, created),
        FailedDelivery("pe_new", 3, error, created + 1),
    ]


def test_retry_gives_every_row_given_up_on_a_fresh_set_of_attempts_due_now(
    database: str, outbox: SqliteOutbox, clock: FakeClock
) -> None:
    for offset, event_id in enumerate(("pe_old", "pe_new", "pe_pending")):
        publish(database, event_id, clock() + offset)
    give_up(outbox, "pe_new")
    give_up(outbox, "pe_old")
    outbox.record_failure("pe_pending", "HTTP 503", 3600.0)
    clock.advance(10)

    assert outbox.retry() == ["pe_old", "pe_new"]

    assert outbox.failed() == []
    for event_id in ("pe_old", "pe_new"):
        row = outbox_row(database, event_id)
        assert (row["attempts"], row["next_attempt_at"]) == (0, clock())
    assert outbox_row(database, "pe_pending")["attempts"] == 1  # not given up: left alone
    claimed = [outbox.claim(LEASE), outbox.claim(LEASE), outbox.claim(LEASE)]
    assert [(c.event_id, c.attempts) if c else None for c in claimed] == [
        ("pe_old", 0),
        ("pe_new", 0),
        None,
    ]
    assert outbox.retry() == []


def test_retry_of_named_rows_resets_only_those_given_up_on(
    database: str, outbox: SqliteOutbox, clock: FakeClock
) -> None:
    for event_id in ("pe_1", "pe_2", "pe_pending", "pe_done"):
        publish(database, event_id, clock())
    give_up(outbox, "pe_1")
    give_up(outbox, "pe_2")
    outbox.mark_delivered("pe_done")

    retried = outbox.retry(["pe_2", "pe_pending", "pe_done", "pe_missing", "pe_2"])

    assert retried == ["pe_2"]
    assert [f.event_id for f in outbox.failed()] == ["pe_1"]
    assert outbox_row(database, "pe_2")["attempts"] == 0
    assert outbox_row(database, "pe_pending")["attempts"] == 0  # pending all along
    assert outbox_row(database, "pe_done")["attempts"] == 1


# the single writer -----------------------------------------------------------------------


def test_with_a_writer_every_write_goes_through_it(database: str, clock: FakeClock) -> None:
    publish(database, "pe_1", clock())
    publish(database, "pe_2", clock() + 1)
    writer = GroupCommitWriter(database)
    writer.start()
    outbox = SqliteOutbox(database, max_attempts=1, clock=clock, writer=writer)
    try:
        assert outbox.claim(LEASE) is not None
        assert outbox.mark_delivered("pe_1")
        clock.advance(1)
        assert outbox.claim(LEASE) is not None
        assert outbox.record_failure("pe_2", "HTTP 500", 1.0) == FailedAttempt(1, True)
        assert outbox.retry() == ["pe_2"]
    finally:
        writer.stop()
    assert outbox_row(database, "pe_1")["delivered_at"] is not None
    assert outbox_row(database, "pe_2")["attempts"] == 0

    # Once the writer has stopped, nothing writes behind its back; reads still work.
    before = outbox_row(database, "pe_2")
    for write in (
        lambda: outbox.claim(LEASE),
        lambda: outbox.mark_delivered("pe_2"),
        lambda: outbox.record_failure("pe_2", "HTTP 500", 1.0),
        lambda: outbox.retry(["pe_2"]),
    ):
        with pytest.raises(StorageUnavailableError, match="writer is not running"):
            write()
    assert dict(outbox_row(database, "pe_2")) == dict(before)
    assert outbox.failed() == []
    outbox.close()


def test_an_idle_claim_needs_no_write(database: str, clock: FakeClock) -> None:
    publish(database, "pe_later", clock() + 60)
    stopped = GroupCommitWriter(database)  # never started: any write through it fails
    outbox = SqliteOutbox(database, clock=clock, writer=stopped)
    assert outbox.claim(LEASE) is None
    outbox.close()


def test_refuses_max_attempts_below_one(database: str) -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        SqliteOutbox(database, max_attempts=0)
