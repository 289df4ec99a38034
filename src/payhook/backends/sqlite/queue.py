"""The embedded processing queue: SQS semantics on a SQLite table (``ProcessingQueue``).

A received message is invisible for the visibility timeout; it is deleted when processed.
A message received ``max_receives`` times without being deleted moves to dead letters (and
its webhook to status ``dead``) on the next receive, as SQS redrive does. ``complete`` is a
worker's one write per batch: the batch's commits, its acknowledgments and failures, and the
next receive.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from payhook.backends.sqlite.commits import apply_batch, commit_rows
from payhook.backends.sqlite.schema import (
    ENQUEUE,
    Transaction,
    WriteExecutor,
    connect,
    run_write,
)
from payhook.core.clock import Clock, system_clock
from payhook.core.ports import Completion, Failure, ProcessingCommit, QueueMessage

__all__ = ["DeadLetter", "QueueMessage", "SqliteQueue"]

log = logging.getLogger("payhook.queue")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    webhook_id: str
    reason: str
    receive_count: int
    failed_at: float


#: The ``dead_letters`` columns in ``DeadLetter``'s order, and every letter, oldest first.
DEAD_LETTER_FIELDS = tuple(f.name for f in fields(DeadLetter))
DEAD_LETTER_COLUMNS = ", ".join(DEAD_LETTER_FIELDS)
ALL_DEAD_LETTERS = f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters ORDER BY failed_at, webhook_id"  # noqa: S608


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
        # The batch as ONE row (a JSON array): on the writer thread each row fetched is a
        # GIL hand-off that, under load, waits behind the other threads.
        [batch] = conn.execute(
            "SELECT json_group_array(json_array(message_id, webhook_id, receive_count))"
            " FROM (SELECT message_id, webhook_id, receive_count FROM queue"
            " WHERE visible_at <= ? ORDER BY visible_at, message_id LIMIT ?)",
            (now, max_messages),
        ).fetchone()
        messages = []
        for message_id, webhook_id, receive_count in json.loads(batch):
            if receive_count >= self.max_receives:
                self._dead_letter(conn, message_id, webhook_id, receive_count, now)
            else:
                messages.append(QueueMessage(message_id, webhook_id, receive_count + 1))
        if messages:
            ids = [m.message_id for m in messages]
            conn.execute(
                "UPDATE queue SET visible_at = ?, receive_count = receive_count + 1"  # noqa: S608
                f" WHERE message_id IN ({','.join('?' * len(ids))})",
                (now + self.visibility_timeout, *ids),
            )
        return messages

    def _dead_letter(
        self,
        conn: sqlite3.Connection,
        message_id: int,
        webhook_id: str,
        receive_count: int,
        now: float,
    ) -> None:
        error = conn.execute("SELECT error FROM webhooks WHERE webhook_id = ?", (webhook_id,))
        reason = (error.fetchone() or [None])[0] or "max receives exceeded"
        conn.execute("DELETE FROM queue WHERE message_id = ?", (message_id,))
        conn.execute(
            f"INSERT INTO dead_letters ({DEAD_LETTER_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?) ON CONFLICT (webhook_id) DO UPDATE SET reason = excluded.reason,"
            " receive_count = excluded.receive_count, failed_at = excluded.failed_at",
            (webhook_id, reason, receive_count, now),
        )
        conn.execute(
            "UPDATE webhooks SET status = 'dead' WHERE webhook_id = ? AND status = 'received'",
            (webhook_id,),
        )
        log.warning(
            "webhook moved to dead letters",
            extra={"webhook_id": webhook_id, "receive_count": receive_count, "reason": reason},
        )

    def complete(
        self,
        commits: Sequence[tuple[QueueMessage, ProcessingCommit]],
        done: Sequence[QueueMessage],
        failures: Sequence[Failure],
        receive: int,
    ) -> Completion:
        """See ``ProcessingQueue.complete``: one background write for a worker's batch."""
        rows = [commit_rows(commit) for _, commit in commits]  # JSON off the writer thread
        now = self.clock()
        noted = [(f.error[:500], f.message.webhook_id) for f in failures]
        retries = [(now + f.retry_in, f.message.message_id) for f in failures]

        def write(conn: sqlite3.Connection) -> Completion:
            outcomes = apply_batch(conn, rows)
            # A webhook no longer ``received`` was processed (or dead-lettered) before: its
            # message is acknowledged with the batch's own.
            gone = [
                m for (m, _), outcome in zip(commits, outcomes, strict=True) if outcome is False
            ]
            ids = [m.message_id for m in (*done, *gone)]
            if ids:
                conn.execute(
                    f"DELETE FROM queue WHERE message_id IN ({','.join('?' * len(ids))})",  # noqa: S608
                    ids,
                )
            if failures:
                conn.executemany(
                    "UPDATE webhooks SET attempts = attempts + 1, error = ? WHERE webhook_id = ?",
                    noted,
                )
                conn.executemany("UPDATE queue SET visible_at = ? WHERE message_id = ?", retries)
            received = self._receive(conn, receive) if receive else []
            return Completion(outcomes, received)

        return run_write(self.conn, self.writer, write)

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
        return [DeadLetter(*row) for row in self.conn.execute(ALL_DEAD_LETTERS)]

    def redrive(self, webhook_ids: list[str] | None = None) -> list[str]:
        """Move dead letters (all, or the given ones) back to the queue (through the writer,
        when there is one)."""
        now = self.clock()

        def write(conn: sqlite3.Connection) -> list[str]:
            wanted = webhook_ids
            if wanted is None:
                wanted = [r[0] for r in conn.execute("SELECT webhook_id FROM dead_letters")]
            moved = []
            for webhook_id in wanted:
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

        return run_write(self.conn, self.writer, write)

    def replay(self, webhook_id: str) -> bool:
        """Process a stored webhook again. The ledger ignores facts it already holds."""
        now = self.clock()

        def write(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                "UPDATE webhooks SET status = 'received', error = NULL WHERE webhook_id = ?",
                (webhook_id,),
            ).rowcount
            if not found:
                return False
            conn.execute("DELETE FROM dead_letters WHERE webhook_id = ?", (webhook_id,))
            conn.execute(ENQUEUE, (now, now, webhook_id))  # unless it is queued already
            return True

        return run_write(self.conn, self.writer, write)
