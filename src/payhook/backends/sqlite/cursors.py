"""The embedded ``CursorStore`` (``payhook.backfill.source``): where each provider's backfill
runs got to, and the lease that keeps them one at a time.

A run takes the provider's lease (a row in ``backfill_cursors``) for ``lease_seconds``; a second
run, in this process or another (``payhook backfill`` beside ``serve``), is refused until the
first releases it or its lease runs out (a crashed run). After each page the run records
``page_cursor`` (where the next page starts) with the ``since`` it was asked for, so a run that
fails part-way resumes there; a finished run clears it and raises ``high_water``, the newest
event time seen, which the next scheduled run starts from (less its overlap).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from payhook.backends.sqlite.schema import WriteExecutor, connect, run_write
from payhook.backfill.source import Cursor


class SqliteCursors:
    """The embedded ``CursorStore``: writes through the single writer when given."""

    def __init__(self, path: str | Path, writer: WriteExecutor | None = None) -> None:
        self.conn = connect(path)
        self.writer = writer

    def close(self) -> None:
        self.conn.close()

    def acquire(self, provider: str, owner: str, now: float, lease_seconds: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO backfill_cursors (provider, updated_at) VALUES (?, ?)"
                " ON CONFLICT (provider) DO NOTHING",
                (provider, now),
            )
            taken = conn.execute(
                "UPDATE backfill_cursors SET lease_owner = ?, lease_until = ?"
                " WHERE provider = ? AND (lease_owner IS NULL OR lease_until < ?)",
                (owner, now + lease_seconds, provider, now),
            )
            return taken.rowcount == 1

        return run_write(self.conn, self.writer, write)

    def release(self, provider: str, owner: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE backfill_cursors SET lease_owner = NULL, lease_until = NULL"
                " WHERE provider = ? AND lease_owner = ?",
                (provider, owner),
            )

        run_write(self.conn, self.writer, write)

    def load(self, provider: str) -> Cursor:
        row = self.conn.execute(
            "SELECT since, page_cursor, high_water FROM backfill_cursors WHERE provider = ?",
            (provider,),
        ).fetchone()
        return Cursor(provider, row[0], row[1], row[2]) if row else Cursor(provider)

    def save(self, cursor: Cursor, now: float) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO backfill_cursors (provider, since, page_cursor, high_water,"
                " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider) DO UPDATE SET"
                " since = excluded.since, page_cursor = excluded.page_cursor,"
                " high_water = excluded.high_water, updated_at = excluded.updated_at",
                (cursor.provider, cursor.since, cursor.page_cursor, cursor.high_water, now),
            )

        run_write(self.conn, self.writer, write)
