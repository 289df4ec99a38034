"""The server's writer and the processing process take turns (``turns.py``): while deliveries
keep the writer committing group after group, each transaction of the other process waits for
at most the group in progress, never for a run of them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from payhook.backends.sqlite import GroupCommitWriter, connect, initialize
from payhook.backends.sqlite.turns import GuestWriter, WriteTurns
from payhook.backends.sqlite.writer import Group
from tests.backends.sqlite.helpers import stored
from tests.conftest import FakeClock

TRANSACTIONS = 100


def _count(conn: object) -> int:
    return int(conn.execute("SELECT count(*) FROM webhooks").fetchone()[0])  # type: ignore[attr-defined]


def guest(db_path: str, transactions: int, results: multiprocessing.Queue[list[int]]) -> None:
    """In a process of its own (the turns are per process): for each transaction, how many
    groups the writer committed between asking for the turn and getting it."""
    turns = WriteTurns(db_path)
    writer = GuestWriter(db_path, turns, timeout=2.0)
    reader = connect(db_path)
    waited = []
    for _ in range(transactions):
        before = _count(reader)
        waited.append(writer.call(_count) - before)
    reader.close()
    writer.close()
    turns.close()
    results.put(waited)


def test_the_processing_process_waits_for_at_most_the_group_in_progress(
    db_path: str, clock: FakeClock
) -> None:
    initialize(db_path)
    writer = GroupCommitWriter(db_path, shared=True)
    busy = True

    def one_more(group: Group) -> None:  # a delivery always waits: one webhook per group
        if busy:
            writer.submit([stored(clock)])

    writer.on_group = one_more
    writer.start()
    writer.submit([stored(clock)])
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[list[int]] = context.Queue()
    process = context.Process(target=guest, args=(db_path, TRANSACTIONS, results))
    try:
        process.start()
        waited = results.get(timeout=60)
        process.join(60)
    finally:
        busy = False
        writer.stop()
    assert process.exitcode == 0
    assert len(waited) == TRANSACTIONS
    # At most the group in progress when it asked, and one that finished just before it
    # asked; SQLite's own lock (no turns) let the writer commit a run of groups first.
    assert max(waited) <= 2, waited
    assert writer.groups > TRANSACTIONS  # the writer did not stop while the guest wrote


def test_turns_live_in_a_private_file_beside_the_database(tmp_path: Path) -> None:
    db_path = tmp_path / "payhook.db"
    turns = WriteTurns(db_path)
    try:
        with turns.writer():
            pass
        with turns.guest():
            pass
    finally:
        turns.close()
    assert (Path(f"{db_path}.turns").stat().st_mode & 0o777) == 0o600
