"""The embedded audit trail: the trigger-filled change feed drained into an authenticated chain.

Draining takes a batch of changes, chains them onto the head, MACs the new head with the key
from ``audit.key``, writes the entries, moves the head and deletes the changes in ONE
transaction: an entry exists for every change, once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from payhook.backends.sqlite.schema import WriteExecutor, connect, run_write
from payhook.core.audit import AuditEntry, Change, PaymentRow
from payhook.core.chain_key import ChainKey, HmacChainKey
from payhook.core.clock import Clock, system_clock
from payhook.errors import ConcurrencyError, ConfigError
from payhook.service.audit import record_changes


def embedded_chain_key(key: str | None, command: str) -> HmacChainKey:
    """The HMAC key of ``audit.key``; without one, a ConfigError saying how to set it."""
    if key is None:
        raise ConfigError(
            f"audit.key is not set: {command} needs the key, kept outside the database, that"
            " authenticates the audit chain; set [audit] key in the config or"
            " PAYHOOK_AUDIT_KEY (e.g. to the output of `openssl rand -hex 32`)"
        )
    return HmacChainKey(key)


def _entry(row: sqlite3.Row) -> AuditEntry:
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


class SqliteAuditLog:
    """``AuditLog`` over the ``audit`` and ``audit_head`` tables; also ``PaymentRows``."""

    def __init__(
        self,
        path: str | Path,
        conn: sqlite3.Connection | None = None,
        writer: WriteExecutor | None = None,
    ) -> None:
        self.conn = conn or connect(path)
        self.writer = writer

    def head(self) -> AuditEntry | None:
        row = self.conn.execute("SELECT * FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return _entry(row) if row else None

    def recorded_head(self) -> tuple[int, str] | None:
        return _recorded_head(self.conn)

    def append(self, entries: Sequence[AuditEntry], expected_head: AuditEntry | None) -> None:
        run_write(self.conn, self.writer, lambda conn: _append(conn, entries, expected_head))

    def entries(self) -> Iterator[AuditEntry]:
        for row in self.conn.execute("SELECT * FROM audit ORDER BY seq"):
            yield _entry(row)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the database (a read transaction), so that entries,
        payment rows and pending changes are compared as of one moment."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def payment_rows(self) -> Iterator[PaymentRow]:
        cursor = self.conn.execute(
            "SELECT provider, payment_id, status, currency, amount, amount_refunded, version,"
            " record FROM payments ORDER BY provider, payment_id"
        )
        for row in cursor:
            try:
                record = json.loads(row["record"])
            except ValueError:
                record = {}
            yield PaymentRow(
                provider=row["provider"],
                payment_id=row["payment_id"],
                status=row["status"],
                currency=row["currency"],
                amount=row["amount"],
                amount_refunded=row["amount_refunded"],
                version=row["version"],
                record=record if isinstance(record, dict) else {},
            )

    def pending_payment_changes(self) -> Iterator[Change]:
        cursor = self.conn.execute(
            "SELECT entity, entity_key, action, data FROM changes WHERE entity = 'payment'"
            " ORDER BY seq"
        )
        for row in cursor:
            yield Change(row["entity"], row["entity_key"], row["action"], json.loads(row["data"]))

    def drain(self, key: ChainKey, limit: int = 500, clock: Clock = system_clock) -> int:
        """Turn up to ``limit`` pending changes into audit entries; returns how many.

        The entries are computed (and their head MAC'd) from a read snapshot; writing them,
        moving the head and deleting the consumed changes is one write, conditional on the
        head not having moved.
        """
        rows = self.conn.execute(
            "SELECT seq, entity, entity_key, action, data FROM changes ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        if not rows:
            return 0
        changes = [
            Change(r["entity"], r["entity_key"], r["action"], json.loads(r["data"]), f"c{r['seq']}")
            for r in rows
        ]
        record_changes(_ConsumingLog(self, rows[-1]["seq"]), changes, key, clock)
        return len(rows)


class _ConsumingLog:
    """The log as ``record_changes`` sees it while draining: appending also consumes the
    change feed up to ``last_seq``, in the same write."""

    def __init__(self, log: SqliteAuditLog, last_seq: int) -> None:
        self.log = log
        self.last_seq = last_seq

    def head(self) -> AuditEntry | None:
        return self.log.head()

    def recorded_head(self) -> tuple[int, str] | None:
        return self.log.recorded_head()

    def entries(self) -> Iterator[AuditEntry]:
        return self.log.entries()

    def append(self, entries: Sequence[AuditEntry], expected_head: AuditEntry | None) -> None:
        def write(conn: sqlite3.Connection) -> None:
            _append(conn, entries, expected_head)
            conn.execute("DELETE FROM changes WHERE seq <= ?", (self.last_seq,))

        run_write(self.log.conn, self.log.writer, write)


def _recorded_head(conn: sqlite3.Connection) -> tuple[int, str] | None:
    row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    return (row["seq"], row["hash"]) if row else None


def _append(
    conn: sqlite3.Connection, entries: Sequence[AuditEntry], expected_head: AuditEntry | None
) -> None:
    if not entries:
        return
    if _recorded_head(conn) != ((expected_head.seq, expected_head.hash) if expected_head else None):
        raise ConcurrencyError("audit head moved")
    conn.executemany(
        "INSERT INTO audit (seq, recorded_at, entity, entity_key, action, data, source_id,"
        " prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.seq,
                e.recorded_at,
                e.entity,
                e.entity_key,
                e.action,
                json.dumps(e.data, sort_keys=True),
                e.source_id,
                e.prev_hash,
                e.hash,
                e.mac,
            )
            for e in entries
        ],
    )
    last = entries[-1]
    conn.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        (last.seq, last.hash),
    )
