"""The embedded audit trail: the ``audit`` and ``audit_head`` tables (``AuditLog``), and what
verification reads beside them (``PaymentRows``).

The change feed that fills the trail is ``changes.py``; the audit worker drains it with
``payhook.service.audit.drain``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from payhook.backends.sqlite.changes import (
    SqliteChangeFeed,
    entry_from_row,
    read_head,
    recorded_head,
)
from payhook.backends.sqlite.schema import Component, read_snapshot, run_write
from payhook.core.audit import AuditEntry, Change, PaymentRow, extend
from payhook.core.chain_key import ChainKey, HmacChainKey
from payhook.core.clock import Clock, iso_utc, system_clock
from payhook.errors import ConcurrencyError, ConfigError


def embedded_chain_key(key: str | None, command: str) -> HmacChainKey:
    """The HMAC key of ``audit.key``; without one, a ConfigError saying how to set it."""
    if key is None:
        raise ConfigError(
            f"audit.key is not set: {command} needs the key, kept outside the database, that"
            " authenticates the audit chain; set [audit] key in the config or"
            " PAYHOOK_AUDIT_KEY (e.g. to the output of `openssl rand -hex 32`)"
        )
    return HmacChainKey(key)


class SqliteAuditLog(Component):
    """``AuditLog`` over the ``audit`` and ``audit_head`` tables; also ``PaymentRows``."""

    def head(self) -> AuditEntry | None:
        return read_head(self.conn)

    def recorded_head(self) -> tuple[int, str] | None:
        return recorded_head(self.conn)

    def append(self, entries: Sequence[AuditEntry], expected_head: AuditEntry | None) -> None:
        run_write(self.conn, self.writer, lambda conn: _append(conn, entries, expected_head))

    def entries(self) -> Iterator[AuditEntry]:
        for row in self.conn.execute("SELECT * FROM audit ORDER BY seq"):
            yield entry_from_row(row)

    def snapshot(self) -> AbstractContextManager[None]:
        """Reads inside see one state of the database (a read transaction), so that entries,
        payment rows and pending changes are compared as of one moment."""
        return read_snapshot(self.conn)

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
        """Chain up to ``limit`` pending changes now, as the audit worker does with
        ``payhook.service.audit.drain`` (for tools and tests that drain by hand)."""
        feed = SqliteChangeFeed(self.path, conn=self.conn, writer=self.writer)
        changes = feed.pending(limit)
        if changes:
            head = self.head()
            feed.chain(changes, extend(head, changes, iso_utc(clock()), key), head)
        return len(changes)


#: One audit entry from ``entry_values``.
INSERT_ENTRY = (
    "INSERT INTO audit (seq, recorded_at, entity, entity_key, action, data, source_id,"
    " prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def entry_values(e: AuditEntry) -> tuple[Any, ...]:
    """``e`` as the values of ``INSERT_ENTRY`` (its data as sorted-key JSON)."""
    data = json.dumps(e.data, sort_keys=True)
    return (e.seq, e.recorded_at, e.entity, e.entity_key, e.action, data, e.source_id,
            e.prev_hash, e.hash, e.mac)  # fmt: skip


def _append(
    conn: sqlite3.Connection, entries: Sequence[AuditEntry], expected_head: AuditEntry | None
) -> None:
    if not entries:
        return
    if recorded_head(conn) != ((expected_head.seq, expected_head.hash) if expected_head else None):
        raise ConcurrencyError("audit head moved")
    conn.executemany(INSERT_ENTRY, [entry_values(e) for e in entries])
    last = entries[-1]
    conn.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        (last.seq, last.hash),
    )
