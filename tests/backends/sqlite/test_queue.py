"""The embedded queue has SQS semantics: visibility timeout, receive counts, dead letters."""

from __future__ import annotations

import pytest

from payhook.backends.sqlite import GroupCommitWriter, SqliteQueue, SqliteStore, connect, initialize
from payhook.backends.sqlite.reader import SqliteReader
from tests.backends.sqlite.helpers import stored
from tests.conftest import FakeClock


@pytest.fixture
def queue(db_path: str, clock: FakeClock):
    initialize(db_path)
    writer = GroupCommitWriter(db_path)
    writer.start()
    writer.store([stored(clock) for _ in range(3)])
    writer.stop()
    return SqliteQueue(db_path, visibility_timeout=30, max_receives=3, clock=clock)


def test_a_received_message_is_invisible_until_the_timeout(
    queue: SqliteQueue, clock: FakeClock
) -> None:
    first = queue.receive(10)
    assert len(first) == 3
    assert all(m.receive_count == 1 for m in first)
    assert queue.receive(10) == []
    clock.advance(29)
    assert queue.receive(10) == []
    clock.advance(2)
    again = queue.receive(10)
    assert {m.webhook_id for m in again} == {m.webhook_id for m in first}
    assert all(m.receive_count == 2 for m in again)


def test_deleted_messages_are_gone(queue: SqliteQueue, clock: FakeClock) -> None:
    for message in queue.receive(10):
        queue.delete(message.message_id)
    clock.advance(60)
    assert queue.receive(10) == []
    assert queue.depth() == 0


def test_retry_later_brings_a_message_back_before_the_timeout(
    queue: SqliteQueue, clock: FakeClock
) -> None:
    messages = queue.receive(10)
    queue.retry_later(messages[0].message_id, 2)
    clock.advance(1)
    assert queue.receive(10) == []
    clock.advance(1)
    assert [m.webhook_id for m in queue.receive(10)] == [messages[0].webhook_id]


def test_max_receives_then_dead_letter_then_redrive(
    queue: SqliteQueue, clock: FakeClock, db_path: str
) -> None:
    store = SqliteStore(db_path)
    for _ in range(3):
        assert len(queue.receive(10)) == 3
        clock.advance(31)
    assert queue.receive(10) == []  # the fourth receive moves them to dead letters
    dead = queue.dead_letters()
    assert len(dead) == 3
    assert all(d.receive_count == 3 for d in dead)
    assert {w.status for w in store.list_webhooks()} == {"dead"}

    moved = queue.redrive([dead[0].webhook_id])
    assert moved == [dead[0].webhook_id]
    assert len(queue.dead_letters()) == 2
    again = queue.receive(10)
    assert [m.webhook_id for m in again] == [dead[0].webhook_id]
    assert again[0].receive_count == 1
    assert store.get_webhook(dead[0].webhook_id).status == "received"  # type: ignore[union-attr]
    assert sorted(queue.redrive()) == sorted(d.webhook_id for d in dead[1:])
    assert queue.dead_letters() == []


def test_redrive_of_an_unknown_id_moves_nothing(queue: SqliteQueue) -> None:
    assert queue.redrive(["wh_nope"]) == []


def test_release_in_flight_makes_messages_visible_at_start_up(
    queue: SqliteQueue, clock: FakeClock
) -> None:
    assert len(queue.receive(10)) == 3
    assert queue.release_in_flight() == 3
    assert len(queue.receive(10)) == 3


def test_replay_queues_a_stored_webhook_once(queue: SqliteQueue, db_path: str) -> None:
    messages = queue.receive(10)
    for m in messages:
        queue.delete(m.message_id)
    target = messages[0].webhook_id
    assert queue.replay(target)
    assert queue.replay(target)  # already queued: not queued twice
    assert queue.depth() == 1
    assert not queue.replay("wh_missing")


def test_dead_letters_come_with_their_webhooks_in_one_read(
    queue: SqliteQueue, clock: FakeClock, db_path: str
) -> None:
    for _ in range(4):  # the fourth receive moves all three to dead letters
        queue.receive(10)
        clock.advance(31)
    dead = queue.dead_letters()
    gone = dead[0].webhook_id
    conn = connect(db_path)
    conn.execute(
        "DELETE FROM queue WHERE message_id = (SELECT rowid FROM webhooks WHERE webhook_id = ?)",
        (gone,),
    )
    conn.execute("DELETE FROM webhooks WHERE webhook_id = ?", (gone,))
    conn.close()
    reader = SqliteReader(db_path)
    try:
        pairs = reader.dead_letters_with_webhooks()
    finally:
        reader.close()
    assert [letter for letter, _ in pairs] == dead
    reader = SqliteReader(db_path)
    try:
        assert [reader.dead_letter(letter.webhook_id) for letter in dead] == dead
        assert reader.dead_letter("wh_not_a_dead_letter") is None
    finally:
        reader.close()
    webhooks = {letter.webhook_id: webhook for letter, webhook in pairs}
    assert webhooks[gone] is None  # its row is gone: the letter still shows
    store = SqliteStore(db_path)
    for letter in dead[1:]:
        assert webhooks[letter.webhook_id] == store.get_webhook(letter.webhook_id)
