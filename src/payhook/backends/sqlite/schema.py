"""SQLite schema and connections.

WAL mode. In the embedded runtime every write goes through the one group writer (writer.py),
whose connection commits with ``synchronous=FULL``: an acknowledged webhook is on disk, and so
is every processing commit. Other connections read; the few that write on their own (CLI
commands, the outbox forwarder) use ``synchronous=NORMAL``, whose commits survive a process
crash and become durable with the next FULL commit, since the WAL is written in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol, TypeVar

from payhook.errors import StorageUnavailableError

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    webhook_id    TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    provider_type TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('received', 'processed', 'dead')),
    verified      INTEGER NOT NULL DEFAULT 1,
    payload       BLOB NOT NULL,
    received_at   REAL NOT NULL,
    occurred_at   REAL,
    processed_at  REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_by_status ON webhooks (status, received_at);
CREATE INDEX IF NOT EXISTS webhooks_by_provider ON webhooks (provider, received_at);

-- A message's id is its webhook's rowid: at most one message per webhook, and no index on
-- the random webhook id to update for every message (an insert touches appended pages only).
CREATE TABLE IF NOT EXISTS queue (
    message_id    INTEGER PRIMARY KEY,
    webhook_id    TEXT NOT NULL,
    visible_at    REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    enqueued_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue (visible_at, message_id);

CREATE TABLE IF NOT EXISTS dead_letters (
    webhook_id    TEXT PRIMARY KEY,
    reason        TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    failed_at     REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS payments (
    provider        TEXT NOT NULL,
    payment_id      TEXT NOT NULL,
    status          TEXT NOT NULL,
    currency        TEXT,
    amount          INTEGER NOT NULL CHECK (amount >= 0),
    amount_refunded INTEGER NOT NULL CHECK (amount_refunded >= 0),
    updated_at      REAL NOT NULL,
    version         INTEGER NOT NULL,
    record          TEXT NOT NULL,
    PRIMARY KEY (provider, payment_id)
);
CREATE INDEX IF NOT EXISTS payments_by_status ON payments (status, provider);

CREATE TABLE IF NOT EXISTS outbox (
    event_id        TEXT PRIMARY KEY,
    body            TEXT NOT NULL,
    created_at      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    delivered_at    REAL,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered_at, next_attempt_at);

CREATE TABLE IF NOT EXISTS changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    entity     TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    action     TEXT NOT NULL,
    data       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit (
    seq         INTEGER PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_key  TEXT NOT NULL,
    action      TEXT NOT NULL,
    data        TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);

-- Storing a webhook schedules its processing: the two cannot be separated.
CREATE TRIGGER IF NOT EXISTS webhooks_enqueued AFTER INSERT ON webhooks BEGIN
    INSERT INTO queue (message_id, webhook_id, visible_at, enqueued_at)
    VALUES (NEW.rowid, NEW.webhook_id, NEW.received_at, NEW.received_at);
END;
CREATE TRIGGER IF NOT EXISTS webhooks_inserted AFTER INSERT ON webhooks BEGIN
    INSERT INTO changes (entity, entity_key, action, data) VALUES (
        'webhook', NEW.webhook_id, 'insert',
        json_object('provider', NEW.provider, 'eventId', NEW.event_id,
                    'eventType', NEW.event_type, 'status', NEW.status));
END;
CREATE TRIGGER IF NOT EXISTS webhooks_status_changed AFTER UPDATE OF status ON webhooks
WHEN OLD.status IS NOT NEW.status BEGIN
    INSERT INTO changes (entity, entity_key, action, data) VALUES (
        'webhook', NEW.webhook_id, 'modify',
        json_object('provider', NEW.provider, 'eventId', NEW.event_id,
                    'eventType', NEW.event_type, 'status', NEW.status,
                    'previousStatus', OLD.status));
END;
CREATE TRIGGER IF NOT EXISTS payments_inserted AFTER INSERT ON payments BEGIN
    INSERT INTO changes (entity, entity_key, action, data) VALUES (
        'payment', NEW.provider || '/' || NEW.payment_id, 'insert',
        json_object('status', NEW.status, 'amount', NEW.amount, 'currency', NEW.currency,
                    'amountRefunded', NEW.amount_refunded, 'version', NEW.version));
END;
CREATE TRIGGER IF NOT EXISTS payments_changed AFTER UPDATE ON payments
WHEN OLD.version IS NOT NEW.version BEGIN
    INSERT INTO changes (entity, entity_key, action, data) VALUES (
        'payment', NEW.provider || '/' || NEW.payment_id, 'modify',
        json_object('status', NEW.status, 'amount', NEW.amount, 'currency', NEW.currency,
                    'amountRefunded', NEW.amount_refunded, 'version', NEW.version,
                    'previousStatus', OLD.status));
END;
"""


def connect(
    path: str | Path, *, durable: bool = False, timeout: float = 10.0
) -> sqlite3.Connection:
    """Open a connection in autocommit mode; transactions are explicit (BEGIN IMMEDIATE)."""
    db_path = Path(path)
    try:
        if str(db_path) != ":memory:":
            db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            db_path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: the webhook-id index is random
        if durable:
            # The group writer never checkpoints on commit (a checkpoint there stalls every
            # waiting request); the embedded runtime checkpoints from another thread.
            conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
    except (sqlite3.Error, OSError) as exc:
        raise StorageUnavailableError(f"cannot open database {db_path}: {exc}") from exc
    return conn


ENQUEUE = (
    "INSERT INTO queue (message_id, webhook_id, visible_at, enqueued_at)"
    " SELECT rowid, webhook_id, ?, ? FROM webhooks WHERE webhook_id = ?"
    " ON CONFLICT (message_id) DO NOTHING"
)
"""Queue a stored webhook again (replay, redrive): parameters now, now, webhook id."""

DEQUEUE = "DELETE FROM queue WHERE message_id = (SELECT rowid FROM webhooks WHERE webhook_id = ?)"


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy committed WAL frames into the database without blocking the writer."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


def initialize(path: str | Path) -> None:
    conn = connect(path, durable=True)
    try:
        conn.executescript(SCHEMA)
    except sqlite3.Error as exc:
        raise StorageUnavailableError(f"cannot create schema in {path}: {exc}") from exc
    finally:
        conn.close()


class Transaction:
    """``with Transaction(conn):`` runs BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            if not self.conn.in_transaction:  # the body rolled back on purpose
                return
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


T = TypeVar("T")


class WriteExecutor(Protocol):
    """Runs a write in the single writer's next group transaction (see writer.py)."""

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    def submit_call(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]: ...


def run_write(
    conn: sqlite3.Connection, writer: WriteExecutor | None, fn: Callable[[sqlite3.Connection], T]
) -> T:
    """Run ``fn`` in a write transaction: through the shared writer when the process has one
    (no lock contention, shared commits), else on ``conn`` (CLI commands, tests)."""
    if writer is not None:
        return writer.call(fn)
    with Transaction(conn) as tx:
        return fn(tx)
