"""Read-only answers for operators (the CLI and the console) over the embedded database.

Opened with ``mode=ro``: a read never creates, migrates or writes a database, so pointing a
read command at the wrong path says so instead of answering from a new empty file.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from payhook.backends.sqlite.outbox import FailedDelivery
from payhook.backends.sqlite.queue import (
    ALL_DEAD_LETTERS,
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_FIELDS,
    DeadLetter,
)
from payhook.backends.sqlite.schema import migrations, read_snapshot, schema_version
from payhook.backends.sqlite.webhooks import WEBHOOK_COLUMNS, WEBHOOK_FIELDS, webhook_from_row
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook, webhook_id_for
from payhook.core.queries import Page, PaymentQuery, WebhookQuery
from payhook.errors import NotFoundError, PayhookError


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits or went wrong, as stored: health and metrics read it."""

    queue_depth: int
    oldest_enqueued_at: float | None
    dead_letters: int
    outbox_failed: int  # forwarded events whose delivery gave up

    def oldest_age(self, now: float) -> float:
        """Seconds the oldest queued webhook has waited at ``now`` (0 with an empty queue)."""
        oldest = self.oldest_enqueued_at
        return max(0.0, now - oldest) if oldest is not None else 0.0


class CursorError(PayhookError):
    """A cursor this database never printed."""


def open_read_only(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an existing database of the current schema."""
    db = Path(path)
    if not db.is_file():
        raise NotFoundError(f"no database at {db}")
    try:
        conn = sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=ro", uri=True)
        version = schema_version(conn)
    except sqlite3.Error as exc:
        raise PayhookError(f"cannot read the database at {db}: {exc}") from exc
    latest = migrations()[-1][0]
    if version != latest:
        conn.close()
        raise PayhookError(
            f"the database at {db} has schema version {version}, this payhook reads {latest}:"
            " run `payhook migrate` (or start `payhook serve`) once to upgrade it"
            if version < latest
            else f"the database at {db} has schema version {version}, newer than this payhook"
        )
    conn.row_factory = sqlite3.Row
    return conn


class SqliteReader:
    """Webhooks, payments, dead letters and outbox deliveries, read-only and paged."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = open_read_only(path)

    def close(self) -> None:
        self.conn.close()

    def backlog(self, max_attempts: int) -> Backlog:
        with self.snapshot():
            depth, oldest = self.conn.execute(
                "SELECT count(*), min(enqueued_at) FROM queue"
            ).fetchone()
            dead = self.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
            failed = self.conn.execute(
                "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND attempts >= ?",
                (max_attempts,),
            ).fetchone()[0]
        return Backlog(depth, oldest, dead, failed)

    def snapshot(self) -> AbstractContextManager[None]:
        """Reads inside see one state of the database (a read transaction)."""
        return read_snapshot(self.conn)

    # webhooks ----------------------------------------------------------------------------

    def webhooks(self, query: WebhookQuery) -> Page[StoredWebhook]:
        """Newest first (by arrival)."""
        where, params = self._where(query)
        total = (
            self.conn.execute(
                f"SELECT count(*) FROM webhooks {where}",  # noqa: S608 - fixed clauses
                params,
            ).fetchone()[0]
            if query.count
            else 0
        )
        page_where, page_params = where, list(params)
        if query.cursor is not None:
            page_where += (" AND " if where else "WHERE ") + "rowid < ?"
            page_params.append(_rowid_of(query.cursor))
        rows = self.conn.execute(
            f"SELECT {WEBHOOK_COLUMNS}, rowid FROM webhooks {page_where}"  # noqa: S608
            " ORDER BY rowid DESC LIMIT ?",
            [*page_params, query.limit + 1],
        ).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = f"w{rows[-1]['rowid']}" if more and rows else None
        return Page([webhook_from_row(r) for r in rows], total, cursor)

    def _where(self, query: WebhookQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("status", query.status),
            ("provider", query.provider),
            ("event_type", query.event_type),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            clauses.append("received_at >= ?")
            params.append(query.since)
        if query.until is not None:
            clauses.append("received_at < ?")
            params.append(query.until)
        if query.event_id is not None:
            # By primary key where the id is signed (the webhook id derives from it), by the
            # unsigned-id index otherwise: never a scan of every row.
            providers = [query.provider] if query.provider else self.providers()
            ids = [webhook_id_for(p, query.event_id) for p in providers]
            marks = ",".join("?" * len(ids)) or "NULL"
            clauses.append(f"(webhook_id IN ({marks}) OR (id_signed = 0 AND event_id = ?))")
            params += [*ids, query.event_id]
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def providers(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT provider FROM webhooks")]

    def webhook(self, webhook_id: str) -> StoredWebhook | None:
        row = self.conn.execute(
            f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = ?",  # noqa: S608
            (webhook_id,),
        ).fetchone()
        return webhook_from_row(row) if row else None

    def arrived_after(self, position: int, limit: int = 200) -> list[tuple[int, StoredWebhook]]:
        """Webhooks stored after ``position`` (a position this returned, or ``latest``), in
        arrival order: what ``webhooks tail`` follows."""
        rows = self.conn.execute(
            f"SELECT {WEBHOOK_COLUMNS}, rowid FROM webhooks WHERE rowid > ?"  # noqa: S608
            " ORDER BY rowid LIMIT ?",
            (position, limit),
        ).fetchall()
        return [(r["rowid"], webhook_from_row(r)) for r in rows]

    def latest(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(rowid), 0) FROM webhooks").fetchone()[0])

    # payments ----------------------------------------------------------------------------

    def payments(self, query: PaymentQuery) -> Page[PaymentRecord]:
        """Most recently updated first."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("status", query.status), ("provider", query.provider)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        total = self.conn.execute(
            f"SELECT count(*) FROM payments {where}",  # noqa: S608 - fixed clauses
            params,
        ).fetchone()[0]
        if query.cursor is not None:
            updated_at, provider, payment_id = _payment_position(query.cursor)
            clauses.append("(updated_at, provider, payment_id) < (?, ?, ?)")
            params += [updated_at, provider, payment_id]
            where = "WHERE " + " AND ".join(clauses)
        rows = self.conn.execute(
            f"SELECT record, updated_at, provider, payment_id FROM payments {where}"  # noqa: S608
            " ORDER BY updated_at DESC, provider DESC, payment_id DESC LIMIT ?",
            [*params, query.limit + 1],
        ).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = None
        if more and rows:
            last = rows[-1]
            position = json.dumps([last["updated_at"], last["provider"], last["payment_id"]])
            cursor = "p" + base64.urlsafe_b64encode(position.encode()).decode()
        records = [PaymentRecord.from_dict(json.loads(r["record"])) for r in rows]
        return Page(records, total, cursor)

    def payment(self, provider: str, payment_id: str) -> PaymentRecord | None:
        row = self.conn.execute(
            "SELECT record FROM payments WHERE provider = ? AND payment_id = ?",
            (provider, payment_id),
        ).fetchone()
        return PaymentRecord.from_dict(json.loads(row["record"])) if row else None

    # queue and outbox --------------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        return [DeadLetter(*row) for row in self.conn.execute(ALL_DEAD_LETTERS)]

    def dead_letter(self, webhook_id: str) -> DeadLetter | None:
        row = self.conn.execute(
            f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE webhook_id = ?",  # noqa: S608
            (webhook_id,),
        ).fetchone()
        return DeadLetter(*row) if row else None

    def dead_letters_with_webhooks(self) -> list[tuple[DeadLetter, StoredWebhook | None]]:
        """Each dead letter beside its webhook (None if the row is gone), in one query."""
        columns = ", ".join(
            [f"w.{name}" for name in WEBHOOK_FIELDS] + [f"d.{name}" for name in DEAD_LETTER_FIELDS]
        )
        rows = self.conn.execute(
            f"SELECT {columns}"  # noqa: S608
            " FROM dead_letters d LEFT JOIN webhooks w ON w.webhook_id = d.webhook_id"
            " ORDER BY d.failed_at, d.webhook_id"
        ).fetchall()
        width = len(WEBHOOK_FIELDS)
        return [
            (DeadLetter(*row[width:]), webhook_from_row(row) if row[0] is not None else None)
            for row in rows
        ]

    def failed_deliveries(self, max_attempts: int) -> list[FailedDelivery]:
        """Outbox deliveries given up on (``max_attempts`` made), oldest first."""
        rows = self.conn.execute(
            "SELECT event_id, attempts, last_error, created_at FROM outbox"
            " WHERE delivered_at IS NULL AND attempts >= ? ORDER BY created_at, event_id",
            (max_attempts,),
        ).fetchall()
        return [FailedDelivery(*row) for row in rows]


def _rowid_of(cursor: str) -> int:
    if cursor.startswith("w") and cursor[1:].isdigit():
        return int(cursor[1:])
    raise CursorError(f"--cursor: got {cursor!r}, expected a cursor this command printed")


def _payment_position(cursor: str) -> tuple[float, str, str]:
    try:
        if not cursor.startswith("p"):
            raise ValueError
        updated_at, provider, payment_id = json.loads(base64.urlsafe_b64decode(cursor[1:]))
        return float(updated_at), str(provider), str(payment_id)
    except ValueError:
        raise CursorError(
            f"--cursor: got {cursor!r}, expected a cursor this command printed"
        ) from None
