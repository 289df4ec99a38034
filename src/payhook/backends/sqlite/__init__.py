"""The embedded backend: one SQLite database in WAL mode."""

from payhook.backends.sqlite.audit import SqliteAuditLog
from payhook.backends.sqlite.queue import DeadLetter, QueueMessage, SqliteQueue
from payhook.backends.sqlite.schema import Transaction, connect, initialize
from payhook.backends.sqlite.store import SqliteStore
from payhook.backends.sqlite.writer import GroupCommitWriter

__all__ = [
    "DeadLetter",
    "GroupCommitWriter",
    "QueueMessage",
    "SqliteAuditLog",
    "SqliteQueue",
    "SqliteStore",
    "Transaction",
    "connect",
    "initialize",
]
