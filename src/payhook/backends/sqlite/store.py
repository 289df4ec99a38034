"""The embedded ``ProcessingStore`` and the read queries behind the CLI."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payhook.backends.sqlite.schema import DEQUEUE, WriteExecutor, connect, run_write
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.core.ports import ProcessingCommit
from payhook.errors import ConcurrencyError

_WEBHOOK_COLUMNS = (
    "webhook_id, provider, provider_type, event_id, event_type, payload, received_at, status,"
    " occurred_at, verified, processed_at, attempts, error, id_signed, conflict"
)


def _webhook(row: sqlite3.Row) -> StoredWebhook:
    return StoredWebhook(
        webhook_id=row["webhook_id"],
        provider=row["provider"],
        provider_type=row["provider_type"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        payload=bytes(row["payload"]),
        received_at=row["received_at"],
        status=WebhookStatus(row["status"]),
        occurred_at=row["occurred_at"],
        verified=bool(row["verified"]),
        processed_at=row["processed_at"],
        attempts=row["attempts"],
        error=row["error"],
        id_signed=bool(row["id_signed"]),
        conflict=bool(row["conflict"]),
    )


class SqliteStore:
    """Reads on its own connection; writes through ``writer`` when given (see ``run_write``)."""

    def __init__(
        self,
        path: str | Path,
        conn: sqlite3.Connection | None = None,
        writer: WriteExecutor | None = None,
    ) -> None:
        self.conn = conn or connect(path)
        self.writer = writer

    def close(self) -> None:
        self.conn.close()

    # ProcessingStore ------------------------------------------------------------------

    def get_webhook(self, webhook_id: str) -> StoredWebhook | None:
        row = self.conn.execute(
            f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = ?",  # noqa: S608
            (webhook_id,),
        ).fetchone()
        return _webhook(row) if row else None

    def get_payment(self, provider: str, payment_id: str) -> PaymentRecord | None:
        row = self.conn.execute(
            "SELECT record FROM payments WHERE provider = ? AND payment_id = ?",
            (provider, payment_id),
        ).fetchone()
        return PaymentRecord.from_dict(json.loads(row["record"])) if row else None

    def commit(self, commit: ProcessingCommit) -> bool:
        return run_write(self.conn, self.writer, functools.partial(_apply_commit, _rows(commit)))

    def commit_many(self, commits: Sequence[ProcessingCommit]) -> list[bool | Exception]:
        """Commit several plans, each all-or-nothing on its own; through the writer they share
        one transaction. Returns per commit its result or the exception it raised."""
        if self.writer is None:
            outcomes: list[bool | Exception] = []
            for commit in commits:
                try:
                    outcomes.append(self.commit(commit))
                except Exception as exc:
                    outcomes.append(exc)
            return outcomes
        futures = [
            self.writer.submit_call(functools.partial(_apply_commit, _rows(c))) for c in commits
        ]
        results: list[bool | Exception] = []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:
                results.append(exc)
        return results

    def record_failure(self, webhook_id: str, error: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE webhooks SET attempts = attempts + 1, error = ? WHERE webhook_id = ?",
                (error[:500], webhook_id),
            )

        run_write(self.conn, self.writer, write)

    # reads ---------------------------------------------------------------------------

    def list_webhooks(
        self, status: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[StoredWebhook]:
        clauses, params = [], []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if provider:
            clauses.append("provider = ?")
            params.append(provider)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(
            f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks {where} "  # noqa: S608 - fixed clauses
            "ORDER BY received_at DESC, webhook_id LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [_webhook(r) for r in rows]

    def list_payments(
        self, status: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[PaymentRecord]:
        clauses, params = [], []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if provider:
            clauses.append("provider = ?")
            params.append(provider)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(
            f"SELECT record FROM payments {where} "  # noqa: S608 - fixed clauses
            "ORDER BY updated_at DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [PaymentRecord.from_dict(json.loads(r["record"])) for r in rows]

    def oldest_queued_age(self, now: float) -> float:
        """Seconds since the oldest queued message was enqueued (0.0 when the queue is empty)."""
        row = self.conn.execute(
            "SELECT enqueued_at FROM queue ORDER BY message_id LIMIT 1"
        ).fetchone()
        return max(0.0, now - row[0]) if row else 0.0

    def counts(self) -> dict[str, int]:
        result = {s.value: 0 for s in WebhookStatus}
        for row in self.conn.execute("SELECT status, count(*) FROM webhooks GROUP BY status"):
            result[row[0]] = row[1]
        result["queued"] = self.conn.execute("SELECT count(*) FROM queue").fetchone()[0]
        result["changes_pending"] = self.conn.execute("SELECT count(*) FROM changes").fetchone()[0]
        return result


@dataclass(frozen=True, slots=True)
class _CommitRows:
    """A processing commit as SQL parameters, serialized before it reaches the writer thread
    (the single writer should spend its time in SQLite, not in json.dumps)."""

    webhook_id: str
    processed_at: float
    payments: list[tuple[Any, ...]]  # values + expected version
    outbox: list[tuple[str, str, float, float]]


def _rows(commit: ProcessingCommit) -> _CommitRows:
    payments = []
    for write in commit.payments:
        record, expected = write.record, write.expected_version
        data = record.to_dict()
        data["version"] = expected + 1
        payments.append(
            (
                str(record.status),
                record.currency,
                record.amount,
                record.amount_refunded,
                record.updated_at,
                expected + 1,
                json.dumps(data),
                record.provider,
                record.payment_id,
                expected,
            )
        )
    outbox = [
        (event["id"], json.dumps(event), commit.processed_at, commit.processed_at)
        for event in commit.published
    ]
    return _CommitRows(commit.webhook_id, commit.processed_at, payments, outbox)


def _apply_commit(rows: _CommitRows, conn: sqlite3.Connection) -> bool:
    """The processing commit, inside the caller's transaction or savepoint."""
    marked = conn.execute(
        "UPDATE webhooks SET status = 'processed', processed_at = ?, error = NULL,"
        " attempts = attempts + 1 WHERE webhook_id = ? AND status = 'received'",
        (rows.processed_at, rows.webhook_id),
    ).rowcount
    if not marked:  # nothing was written: no rollback needed
        return False
    for values in rows.payments:
        _write_payment(conn, values)
    if rows.outbox:
        conn.executemany(
            "INSERT INTO outbox (event_id, body, created_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            rows.outbox,
        )
    conn.execute(DEQUEUE, (rows.webhook_id,))
    return True


def _write_payment(conn: sqlite3.Connection, values: tuple[Any, ...]) -> None:
    *columns, expected = values
    if expected == 0:
        cursor = conn.execute(
            "INSERT INTO payments (status, currency, amount, amount_refunded, updated_at,"
            " version, record, provider, payment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (provider, payment_id) DO NOTHING",
            columns,
        )
    else:
        cursor = conn.execute(
            "UPDATE payments SET status = ?, currency = ?, amount = ?, amount_refunded = ?,"
            " updated_at = ?, version = ?, record = ? WHERE provider = ? AND payment_id = ?"
            " AND version = ?",
            values,
        )
    if cursor.rowcount != 1:
        provider, payment_id = columns[-2], columns[-1]
        raise ConcurrencyError(f"payment {provider}/{payment_id} changed")
