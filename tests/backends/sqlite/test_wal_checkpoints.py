"""The writer checkpoints its own WAL between groups: under continuous writes, with a reader
always in the database, the WAL starts over instead of growing; after a burst, once idle, it
shrinks."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from payhook.backends.sqlite import GroupCommitWriter, connect, initialize, schema
from tests.backends.sqlite.helpers import stored
from tests.conftest import FakeClock

#: Each webhook carries this much payload, so that a few hundred fill several MB of WAL.
PAYLOAD_BYTES = 16 * 1024


def _wal(db_path: str) -> int:
    return Path(f"{db_path}-wal").stat().st_size


def _write_while_reading(db_path: str, clock: FakeClock, checkpoint_seconds: float | None) -> int:
    """Store 300 webhooks one group at a time while another connection keeps reading; the
    WAL file's size at the end."""
    initialize(db_path)
    writer = GroupCommitWriter(db_path, checkpoint_seconds=checkpoint_seconds)
    writer.start()
    done = threading.Event()

    def read() -> None:
        conn = connect(db_path)
        while not done.is_set():
            conn.execute("SELECT count(*) FROM webhooks").fetchone()
        conn.close()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(300):
            webhook = stored(clock)
            writer.store([replace(webhook, payload=webhook.payload + b" " * PAYLOAD_BYTES)])
    finally:
        done.set()
        reader.join()
        size = _wal(db_path)
        writer.stop()
    return size


def test_the_wal_starts_over_under_continuous_writes_and_reads(
    db_path: str, clock: FakeClock
) -> None:
    # Less than the payloads alone (~4.9 MB): the WAL started over again and again (measured
    # 0.2-0.9 MB; a checkpoint from another thread every 5 ms left 11 MB, none 17 MB).
    assert _write_while_reading(db_path, clock, checkpoint_seconds=0) < 300 * PAYLOAD_BYTES


def test_without_checkpoints_the_same_writes_grow_the_wal(tmp_path: Path, clock: FakeClock) -> None:
    # The measure above can fail: the same load with no checkpoint leaves it all in the WAL.
    db_path = str(tmp_path / "payhook.db")
    assert _write_while_reading(db_path, clock, checkpoint_seconds=None) > 300 * PAYLOAD_BYTES


def test_after_a_burst_the_idle_writer_shrinks_the_wal(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "JOURNAL_SIZE_LIMIT_BYTES", 1024 * 1024)
    initialize(db_path)
    writer = GroupCommitWriter(db_path, checkpoint_seconds=0.05)
    writer.start()
    try:

        def burst(conn):  # type: ignore[no-untyped-def]
            conn.execute("CREATE TABLE blobs (data BLOB)")
            for _ in range(50):  # ~5 MB through the WAL in one group
                conn.execute("INSERT INTO blobs VALUES (?)", (os.urandom(100_000),))

        writer.call(burst)
        assert _wal(db_path) > 4 * 1024 * 1024
        deadline = time.monotonic() + 30
        while _wal(db_path) > 1024 * 1024 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _wal(db_path) <= 1024 * 1024
        writer.call(lambda conn: conn.execute("INSERT INTO blobs VALUES (x'00')"))
    finally:
        writer.stop()
