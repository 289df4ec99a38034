"""The embedded outbox: canonical events published by processing, waiting to be forwarded.

Processing inserts the rows (in its own commit, see store.py); this module is everything the
forwarder and an operator do with them afterwards. Every write goes through the single writer
when the process has one (``run_write``), as processing and audit writes do; reads use this
store's own connection.

A row is pending while ``delivered_at`` is NULL and ``attempts < max_attempts``. The failure
that makes ``attempts`` reach ``max_attempts`` gives up on the row: it stays in the table,
undelivered, with ``last_error`` starting with ``gave up``, until ``retry`` gives it a fresh
set of attempts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from payhook.backends.sqlite.schema import WriteExecutor, connect, run_write
from payhook.core.clock import Clock, system_clock
from payhook.errors import ConfigError

#: The oldest row due for an attempt: parameters now, max_attempts.
_SELECT_DUE = (
    "SELECT event_id, body, attempts FROM outbox"
    " WHERE delivered_at IS NULL AND next_attempt_at <= ? AND attempts < ?"
    " ORDER BY next_attempt_at, created_at, event_id LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A claimed row: the event to send, and how many attempts came before this one."""

    event_id: str
    body: str
    attempts: int


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """What recording a failure did: the row's attempts so far, and whether it gave up."""

    attempts: int
    gave_up: bool


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A row given up on: never delivered, ``max_attempts`` attempts, the last error."""

    event_id: str
    attempts: int
    last_error: str
    created_at: float


class SqliteOutbox:
    """The ``outbox`` table. Reads on its own connection; writes through ``writer`` when given
    (see ``run_write``), else in a transaction of their own (CLI commands, tests)."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_attempts: int = 10,
        clock: Clock = system_clock,
        conn: sqlite3.Connection | None = None,
        writer: WriteExecutor | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ConfigError(f"outbox.max_attempts: got {max_attempts!r}, expected 1 or more")
        self.conn = conn or connect(path)
        self.writer = writer
        self.max_attempts = max_attempts
        self.clock = clock

    def close(self) -> None:
        self.conn.close()

    # delivery --------------------------------------------------------------------------

    def claim(self, lease_seconds: float) -> OutboxEvent | None:
        """The oldest due row, leased: its next attempt moves ``lease_seconds`` ahead, so no
        other forwarder takes it meanwhile, and a crash before it is marked sends it again
        once the lease ends (delivery is at least once)."""
        # A read first: an idle forwarder polling an empty outbox costs no write.
        if self.conn.execute(_SELECT_DUE, (self.clock(), self.max_attempts)).fetchone() is None:
            return None
        return run_write(self.conn, self.writer, lambda conn: self._claim(conn, lease_seconds))

    def _claim(self, conn: sqlite3.Connection, lease_seconds: float) -> OutboxEvent | None:
        now = self.clock()
        row = conn.execute(_SELECT_DUE, (now, self.max_attempts)).fetchone()
        if row is None:  # another claim took it between the read and this write
            return None
        conn.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE event_id = ?",
            (now + lease_seconds, row["event_id"]),
        )
        return OutboxEvent(row["event_id"], row["body"], row["attempts"])

    def mark_delivered(self, event_id: str) -> bool:
        """Record the attempt that delivered ``event_id``; False when it is not pending."""
        now = self.clock()
        return bool(
            run_write(
                self.conn,
                self.writer,
                lambda conn: (
                    conn.execute(
                        "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1,"
                        " last_error = NULL WHERE event_id = ? AND delivered_at IS NULL",
                        (now, event_id),
                    ).rowcount
                ),
            )
        )

    def record_failure(
        self, event_id: str, error: str, retry_in_seconds: float
    ) -> FailedAttempt | None:
        """Record a failed attempt: due again in ``retry_in_seconds``, unless it was attempt
        ``max_attempts`` (then the row is given up on). None when the row is not pending.
        ``error`` is stored as it is: it must never hold the body."""
        return run_write(
            self.conn,
            self.writer,
            lambda conn: self._record_failure(conn, event_id, error, retry_in_seconds),
        )

    def _record_failure(
        self, conn: sqlite3.Connection, event_id: str, error: str, retry_in_seconds: float
    ) -> FailedAttempt | None:
        row = conn.execute(
            "SELECT attempts FROM outbox WHERE event_id = ? AND delivered_at IS NULL",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        attempts = row["attempts"] + 1
        gave_up = attempts >= self.max_attempts
        now = self.clock()
        if gave_up:
            error = f"gave up after {attempts} attempts: {error}"
        conn.execute(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
            " WHERE event_id = ?",
            (attempts, now if gave_up else now + retry_in_seconds, error, event_id),
        )
        return FailedAttempt(attempts, gave_up)

    # operators -------------------------------------------------------------------------

    def failed(self) -> list[FailedDelivery]:
        """Every row given up on, oldest first."""
        rows = self.conn.execute(
            "SELECT event_id, attempts, last_error, created_at FROM outbox"
            " WHERE delivered_at IS NULL AND attempts >= ? ORDER BY created_at, event_id",
            (self.max_attempts,),
        ).fetchall()
        return [FailedDelivery(*row) for row in rows]

    def retry(self, event_ids: Sequence[str] | None = None) -> list[str]:
        """Give rows given up on (all, or the given ones) a fresh set of attempts, due now;
        returns the ids reset. An id that is not a given-up row is left alone."""
        now = self.clock()

        def reset(conn: sqlite3.Connection) -> list[str]:
            if event_ids is None:
                candidates = [
                    row[0]
                    for row in conn.execute(
                        "SELECT event_id FROM outbox WHERE delivered_at IS NULL AND attempts >= ?"
                        " ORDER BY created_at, event_id",
                        (self.max_attempts,),
                    )
                ]
            else:
                candidates = list(dict.fromkeys(event_ids))  # each once, in the order given
            return [
                event_id
                for event_id in candidates
                if conn.execute(
                    "UPDATE outbox SET attempts = 0, next_attempt_at = ? WHERE event_id = ?"
                    " AND delivered_at IS NULL AND attempts >= ?",
                    (now, event_id, self.max_attempts),
                ).rowcount
            ]

        return run_write(self.conn, self.writer, reset)
