"""The embedded change feed (``ChangeFeed``): rows that triggers write in the ``changes`` table
in the same transaction as every webhook and payment change, chained into the ``audit`` table.

``chain`` is one write: the entries are inserted, the head moves and the consumed changes are
deleted together, conditional on the head not having moved, so an entry exists for every
change, once. Each entry's ``data`` is stored as the change's JSON text exactly as the trigger
wrote it (parsed, it is what the entry's hash covers), so chaining encodes no JSON.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from payhook.backends.sqlite.schema import Component, run_write
from payhook.core.audit import AuditEntry, Change
from payhook.errors import ConcurrencyError

#: Entries per INSERT statement: 7 values each, far below SQLite's 32766 bound parameters.
_ROWS_PER_STATEMENT = 500
#: Entries from ``{values}`` rows (seq, recorded_at, source_id, prev_hash, hash, mac, the seq
#: of the change), with the subject, action and data of that change.
_INSERT_ENTRIES = (
    "INSERT INTO audit (seq, recorded_at, entity, entity_key, action, data, source_id,"
    " prev_hash, hash, mac) SELECT v.column1, v.column2, c.entity, c.entity_key, c.action,"
    " c.data, v.column3, v.column4, v.column5, v.column6 FROM (VALUES {values}) AS v"
    " JOIN changes c ON c.seq = v.column7"
)


def read_head(conn: sqlite3.Connection) -> AuditEntry | None:
    """The last entry of the ``audit`` table."""
    row = conn.execute("SELECT * FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return entry_from_row(row) if row else None


def entry_from_row(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        recorded_at=row["recorded_at"],
        entity=row["entity"],
        entity_key=row["entity_key"],
        action=row["action"],
        data=json.loads(row["data"]),
        source_id=row["source_id"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        mac=row["mac"],
    )


def recorded_head(conn: sqlite3.Connection) -> tuple[int, str] | None:
    row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    return (row["seq"], row["hash"]) if row else None


class SqliteChangeFeed(Component):
    """Reads on its own connection; ``chain`` writes through ``writer`` when given."""

    def head(self) -> AuditEntry | None:
        return read_head(self.conn)

    def pending(self, limit: int) -> list[Change]:
        rows = self.conn.execute(
            "SELECT seq, entity, entity_key, action, data FROM changes ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [Change(r[1], r[2], r[3], json.loads(r[4]), f"c{r[0]}") for r in rows]

    def chain(
        self,
        changes: Sequence[Change],
        entries: Sequence[AuditEntry],
        expected_head: AuditEntry | None,
    ) -> None:
        if len(changes) != len(entries):
            raise ValueError(f"got {len(entries)} entries for {len(changes)} changes")
        if not entries:
            return
        rows = [
            (e.seq, e.recorded_at, e.source_id, e.prev_hash, e.hash, e.mac, _seq(c))
            for c, e in zip(changes, entries, strict=True)
        ]
        expected = (expected_head.seq, expected_head.hash) if expected_head else None
        last = entries[-1]

        def write(conn: sqlite3.Connection) -> None:
            if recorded_head(conn) != expected:
                raise ConcurrencyError("audit head moved")
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                chunk = rows[start : start + _ROWS_PER_STATEMENT]
                values = ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                inserted = conn.execute(
                    _INSERT_ENTRIES.format(values=values), [v for row in chunk for v in row]
                ).rowcount
                if inserted != len(chunk):  # a change went away: nobody else consumes them
                    raise ConcurrencyError("changes were consumed meanwhile")
            conn.execute(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                (last.seq, last.hash),
            )
            conn.execute("DELETE FROM changes WHERE seq <= ?", (max(r[-1] for r in rows),))

        run_write(self.conn, self.writer, write)


def _seq(change: Change) -> int:
    """The ``changes`` row a change was read from (``source_id`` is ``c<seq>``)."""
    if not change.source_id.startswith("c") or not change.source_id[1:].isdigit():
        raise ValueError(f"not a change of this feed: source id {change.source_id!r}")
    return int(change.source_id[1:])
