"""The embedded processing queue: SQS semantics on a SQLite table.

A received message is invisible for the visibility timeout; it is deleted when processed.
A message received ``max_receives`` times without being deleted moves to dead letters (and
its webhook to status ``dead``) on the next receive, as SQS redrive does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from payhook.backends.sqlite.schema import (
    ENQUEUE,
    Transaction,
    WriteExecutor,
    connect,
    run_write,
)
from payhook.core.clock import Clock, system_clock


@dataclass(frozen=True, slots=True)
class QueueMessage:
    message_id: int
    webhook_id: str
    receive_count: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    webhook_id: str
    reason: str
    receive_count: int
    failed_at: float


class SqliteQueue:
    def __init__(
        self,
        path: str | Path,
        *,
        visibility_timeout: float = 30.0,
        max_receives: int = 5,
        clock: Clock = system_clock,
        conn: sqlite3.Connection | None = None,
        writer: WriteExecutor | None = None,
    ) -> None:
        self.conn = conn or connect(path)
        self.writer = writer
        self.visibility_timeout = visibility_timeout
        self.max_receives = max_receives
        self.clock = clock

    def receive(self, max_messages: int = 10) -> list[QueueMessage]:
        # A read first: an idle worker polling an empty queue costs no write transaction.
        visible = self.conn.execute(
            "SELECT 1 FROM queue WHERE visible_at <= ? LIMIT 1", (self.clock(),)
        ).fetchone()
        if visible is None:
            return []
        return run_write(self.conn, self.writer, lambda conn: self._receive(conn, max_messages))

    def _receive(self, conn: sqlite3.Connection, max_messages: int) -> list[QueueMessage]:
        now = self.clock()
        rows = conn.execute(
            "SELECT q.message_id, q.webhook_id, q.receive_count, w.error FROM queue q "
            "LEFT JOIN webhooks w ON w.webhook_id = q.webhook_id "
            "WHERE q.visible_at <= ? ORDER BY q.visible_at, q.message_id LIMIT ?",
            (now, max_messages),
        ).fetchall()
        messages = []
        for row in rows:
            if row["receive_count"] >= self.max_receives:
                self._dead_letter(conn, row, now)
                continue
            conn.execute(
                "UPDATE queue SET visible_at = ?, receive_count = receive_count + 1 "
                "WHERE message_id = ?",
                (now + self.visibility_timeout, row["message_id"]),
            )
            messages.append(
                QueueMessage(row["message_id"], row["webhook_id"], row["receive_count"] + 1)
            )
        return messages

    def _dead_letter(self, conn: sqlite3.Connection, row: sqlite3.Row, now: float) -> None:
        conn.execute("DELETE FROM queue WHERE message_id = ?", (row["message_id"],))
        conn.execute(
            "INSERT INTO dead_letters (webhook_id, reason, receive_count, failed_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (webhook_id) DO UPDATE SET reason = excluded.reason,"
            " receive_count = excluded.receive_count, failed_at = excluded.failed_at",
            (row["webhook_id"], row["error"] or "max receives exceeded", row["receive_count"], now),
        )
        conn.execute(
            "UPDATE webhooks SET status = 'dead' WHERE webhook_id = ? AND status = 'received'",
            (row["webhook_id"],),
        )

    def delete(self, message_id: int) -> None:
        run_write(
            self.conn,
            self.writer,
            lambda conn: conn.execute("DELETE FROM queue WHERE message_id = ?", (message_id,)),
        )

    def retry_later(self, message_id: int, delay: float) -> None:
        """Make a failed message visible again after ``delay`` (a backoff within the timeout)."""
        visible_at = self.clock() + delay
        run_write(
            self.conn,
            self.writer,
            lambda conn: conn.execute(
                "UPDATE queue SET visible_at = ? WHERE message_id = ?", (visible_at, message_id)
            ),
        )

    def release_in_flight(self) -> int:
        """At start-up nothing can still hold a message (one process owns the database)."""
        with Transaction(self.conn) as conn:
            return conn.execute(
                "UPDATE queue SET visible_at = ? WHERE visible_at > ?", (self.clock(), self.clock())
            ).rowcount

    def depth(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM queue").fetchone()[0])

    def dead_letters(self) -> list[DeadLetter]:
        rows = self.conn.execute(
            "SELECT webhook_id, reason, receive_count, failed_at FROM dead_letters "
            "ORDER BY failed_at, webhook_id"
        ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def redrive(self, webhook_ids: list[str] | None = None) -> list[str]:
        """Move dead letters (all, or the given ones) back to the queue."""
        now = self.clock()
        with Transaction(self.conn) as conn:
            if webhook_ids is None:
                webhook_ids = [r[0] for r in conn.execute("SELECT webhook_id FROM dead_letters")]
            moved = []
            for webhook_id in webhook_ids:
                if not conn.execute(
                    "DELETE FROM dead_letters WHERE webhook_id = ?", (webhook_id,)
                ).rowcount:
                    continue
                conn.execute(
                    "UPDATE webhooks SET status = 'received', error = NULL "
                    "WHERE webhook_id = ? AND status = 'dead'",
                    (webhook_id,),
                )
                conn.execute(ENQUEUE, (now, now, webhook_id))
                moved.append(webhook_id)
        return moved

    def replay(self, webhook_id: str) -> bool:
        """Process a stored webhook again. The ledger ignores facts it already holds."""
        now = self.clock()
        with Transaction(self.conn) as conn:
            found = conn.execute(
                "UPDATE webhooks SET status = 'received', error = NULL WHERE webhook_id = ?",
                (webhook_id,),
            ).rowcount
            if not found:
                return False
            conn.execute("DELETE FROM dead_letters WHERE webhook_id = ?", (webhook_id,))
            conn.execute(ENQUEUE, (now, now, webhook_id))  # unless it is queued already
        return True
