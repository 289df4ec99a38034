"""The embedded ``ProcessingStore`` (also ``BatchProcessingStore``) and the read queries
behind the CLI."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable, Sequence

from payhook.backends.sqlite.commits import apply_commit, commit_rows
from payhook.backends.sqlite.schema import Component, run_write
from payhook.backends.sqlite.webhooks import WEBHOOK_COLUMNS, webhook_from_row
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.core.ports import ProcessingCommit

#: Ids per ``IN (...)`` list: far below SQLite's 32766 bound parameters.
_IDS_PER_QUERY = 500


class SqliteStore(Component):
    """Reads on its own connection; writes through ``writer`` when given (see ``run_write``)."""

    # ProcessingStore ------------------------------------------------------------------

    def get_webhook(self, webhook_id: str) -> StoredWebhook | None:
        row = self.conn.execute(
            f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = ?",  # noqa: S608
            (webhook_id,),
        ).fetchone()
        return webhook_from_row(row) if row else None

    def get_webhooks(self, webhook_ids: Sequence[str]) -> dict[str, StoredWebhook]:
        found: dict[str, StoredWebhook] = {}
        ids = list(dict.fromkeys(webhook_ids))
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            for row in self.conn.execute(
                f"SELECT {WEBHOOK_COLUMNS} FROM webhooks"  # noqa: S608 - placeholders only
                f" WHERE webhook_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                found[row[0]] = webhook_from_row(row)
        return found

    def get_payment(self, provider: str, payment_id: str) -> PaymentRecord | None:
        row = self.conn.execute(
            "SELECT record FROM payments WHERE provider = ? AND payment_id = ?",
            (provider, payment_id),
        ).fetchone()
        return PaymentRecord.from_dict(json.loads(row["record"])) if row else None

    def get_payments(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], PaymentRecord]:
        found: dict[tuple[str, str], PaymentRecord] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = wanted[start : start + _IDS_PER_QUERY]
            # A join, not "(provider, payment_id) IN (VALUES ...)": SQLite scans the whole
            # table for that one.
            for row in self.conn.execute(
                "SELECT p.provider, p.payment_id, p.record"  # noqa: S608 - placeholders only
                f" FROM (VALUES {','.join(['(?, ?)'] * len(chunk))}) AS v"
                " JOIN payments p ON p.provider = v.column1 AND p.payment_id = v.column2",
                [value for key in chunk for value in key],
            ):
                found[(row[0], row[1])] = PaymentRecord.from_dict(json.loads(row[2]))
        return found

    def commit(self, commit: ProcessingCommit) -> bool:
        return run_write(
            self.conn, self.writer, functools.partial(apply_commit, commit_rows(commit))
        )

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
            f"SELECT {WEBHOOK_COLUMNS} FROM webhooks {where} "  # noqa: S608 - fixed clauses
            "ORDER BY received_at DESC, webhook_id LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [webhook_from_row(r) for r in rows]

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

    def counts(self) -> dict[str, int]:
        result = {s.value: 0 for s in WebhookStatus}
        for row in self.conn.execute("SELECT status, count(*) FROM webhooks GROUP BY status"):
            result[row[0]] = row[1]
        result["queued"] = self.conn.execute("SELECT count(*) FROM queue").fetchone()[0]
        result["changes_pending"] = self.conn.execute("SELECT count(*) FROM changes").fetchone()[0]
        return result
