"""The writer's one priority rule: every group commit carries every delivery waiting at the
writer and at most one background write, the oldest.

Each test holds the writer between two groups (``paused_after_first_group``), submits, lets
it go, and checks what each group carried: no sleeps, no timing, no private state.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator

import pytest

from payhook.backends.sqlite import GroupCommitWriter, connect, initialize
from payhook.backends.sqlite.writer import Group
from payhook.core.model import Stored
from payhook.errors import StorageUnavailableError
from tests.backends.sqlite.helpers import stored
from tests.backends.sqlite.pausing import paused_after_first_group
from tests.conftest import FakeClock, count_rows

NOTHING = Group(deliveries=0, webhooks=0, background=1, committed=True)  # the pausing write


@pytest.fixture
def writer(db_path: str) -> Iterator[GroupCommitWriter]:
    initialize(db_path)
    w = GroupCommitWriter(db_path)
    w.start()
    yield w
    w.stop()


def background(name: str, ran: list[str]) -> Callable[[sqlite3.Connection], str]:
    """A background write that leaves a row and notes when it ran."""

    def write(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO dead_letters VALUES (?, 'marker', 0, 0)", (name,))
        ran.append(name)
        return name

    return write


def test_deliveries_go_in_the_next_group_beside_one_background_write_however_many_wait(
    writer: GroupCommitWriter, clock: FakeClock
) -> None:
    ran: list[str] = []
    with paused_after_first_group(writer) as carried:
        calls = [writer.submit_call(background(f"bg{i}", ran)) for i in range(3)]
        deliveries = [writer.submit([stored(clock), stored(clock)]) for _ in range(20)]
    assert [f.result() for f in deliveries] == [[Stored.NEW, Stored.NEW]] * 20
    assert [f.result() for f in calls] == ["bg0", "bg1", "bg2"]
    assert carried == [
        NOTHING,
        Group(deliveries=20, webhooks=40, background=1, committed=True),
        Group(deliveries=0, webhooks=0, background=1, committed=True),
        Group(deliveries=0, webhooks=0, background=1, committed=True),
    ]
    assert ran == ["bg0", "bg1", "bg2"]  # oldest first


def test_background_writes_are_not_starved_while_deliveries_keep_arriving(
    writer: GroupCommitWriter, clock: FakeClock
) -> None:
    ran: list[str] = []
    carried: list[Group] = []
    done = threading.Event()
    with paused_after_first_group(writer) as paused:
        calls = [writer.submit_call(background(f"bg{i}", ran)) for i in range(3)]
        writer.submit([stored(clock)])
        pausing_hook = writer.on_group
        assert pausing_hook is not None

        def another_delivery_always_waiting(group: Group) -> None:
            pausing_hook(group)
            carried.append(group)
            if len(carried) < 5:
                writer.submit([stored(clock)])  # arrives before the writer takes its next group
            else:
                done.set()

        writer.on_group = another_delivery_always_waiting
    assert done.wait(10)
    assert [f.result() for f in calls] == ["bg0", "bg1", "bg2"]
    assert [(g.deliveries, g.background) for g in paused[1:]] == [
        (1, 1),
        (1, 1),
        (1, 1),
        (1, 0),
        (1, 0),
    ]
    assert count_rows(writer.path, "webhooks") == 5  # type: ignore[arg-type]


def test_a_background_write_alone_is_a_group_of_its_own(writer: GroupCommitWriter) -> None:
    ran: list[str] = []
    with paused_after_first_group(writer) as carried:
        call = writer.submit_call(background("alone", ran))
    assert call.result() == "alone"
    assert carried == [NOTHING, NOTHING]


def test_a_failing_background_write_undoes_only_its_own_writes_in_a_shared_group(
    writer: GroupCommitWriter, db_path: str, clock: FakeClock
) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO dead_letters VALUES ('half', 'marker', 0, 0)")
        raise ValueError("boom")

    with paused_after_first_group(writer) as carried:
        failing = writer.submit_call(half_then_fail)
        delivery = writer.submit([stored(clock)])
    assert delivery.result() == [Stored.NEW]
    assert isinstance(failing.exception(), ValueError)
    assert carried[1] == Group(deliveries=1, webhooks=1, background=1, committed=True)
    assert count_rows(db_path, "dead_letters") == 0
    assert count_rows(db_path, "webhooks") == 1


def test_while_the_database_is_locked_a_group_fails_whole_and_the_next_one_commits(
    db_path: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    initialize(db_path)
    monkeypatch.setattr(GroupCommitWriter, "busy_timeout_seconds", 0.05)
    writer = GroupCommitWriter(db_path)
    writer.start()
    other = connect(db_path)
    try:
        ran: list[str] = []
        with paused_after_first_group(writer) as carried:
            other.execute("BEGIN IMMEDIATE")  # another process holds SQLite's lock
            calls = [writer.submit_call(background(f"bg{i}", ran)) for i in range(2)]
            deliveries = [writer.submit([stored(clock)]) for _ in range(5)]
            pausing_hook = writer.on_group
            assert pausing_hook is not None

            def release_after_the_failure(group: Group) -> None:
                pausing_hook(group)
                if not group.committed:
                    other.rollback()  # the next group finds the database free

            writer.on_group = release_after_the_failure
        for future in (*deliveries, calls[0]):
            with pytest.raises(StorageUnavailableError):
                future.result()
        assert calls[1].result() == "bg1"
        assert carried[1:] == [
            Group(deliveries=5, webhooks=5, background=1, committed=False),
            Group(deliveries=0, webhooks=0, background=1, committed=True),
        ]
        assert ran == ["bg1"]  # bg0 never ran: its group could not begin
        assert count_rows(db_path, "dead_letters") == 1
        assert count_rows(db_path, "webhooks") == 0
        assert writer.store([stored(clock)]) == [Stored.NEW]
    finally:
        other.close()
        writer.stop()
