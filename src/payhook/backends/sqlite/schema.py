"""SQLite schema (numbered migrations in ``migrations/``) and connections.

Files are private: a database, its WAL and SHM (SQLite gives them the database's mode) are
created 0600 and a folder payhook creates 0700, since payloads hold personal data.

WAL mode. In the embedded runtime every write goes through the one group writer (writer.py),
whose connection commits with ``synchronous=FULL``: an acknowledged webhook is on disk, and so
is every processing commit. Other connections read; the few that write on their own (CLI
commands, the outbox forwarder) use ``synchronous=NORMAL``, whose commits survive a process
crash and become durable with the next FULL commit, since the WAL is written in order.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

from payhook.errors import StorageUnavailableError

log = logging.getLogger("payhook.sqlite")

MIGRATIONS = Path(__file__).parent / "migrations"
#: The most SQLite may keep of its WAL file once a checkpoint has copied it all back: after a
#: burst the file shrinks to this at the next write, instead of staying at its peak.
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


def connect(
    path: str | Path, *, durable: bool = False, timeout: float = 10.0
) -> sqlite3.Connection:
    """Open a connection in autocommit mode; transactions are explicit (BEGIN IMMEDIATE)."""
    db_path = Path(path)
    try:
        if str(db_path) != ":memory:":
            create_private(db_path)
        conn = sqlite3.connect(
            db_path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: the webhook-id index is random
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
        if durable:
            # The group writer never checkpoints on commit (a checkpoint there stalls every
            # waiting request); it checkpoints between groups, once per interval.
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


def checkpoint(conn: sqlite3.Connection, shrink: bool = True) -> None:
    """Copy committed WAL frames into the database without waiting for anyone; with
    ``shrink``, once all are copied and the WAL is over ``JOURNAL_SIZE_LIMIT_BYTES`` (after a
    burst), truncate it."""
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if busy or frames != copied or not shrink:
        return
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    if frames * page_size > JOURNAL_SIZE_LIMIT_BYTES:
        # TRUNCATE holds the write lock while it waits for readers; with a busy timeout it
        # would sleep there (up to 100 ms at a time) while every delivery waits behind it.
        # Without one it truncates only if the readers are already done, else the next
        # checkpoint tries again.
        timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")


class WalCheckpoints:
    """The group writer's checkpoints of its own WAL, between groups, once per ``every``
    seconds (None: never).

    The writer checkpoints rather than another thread because only a checkpoint completed just
    before the writer's next commit lets that commit start the WAL over from its beginning:
    under sustained load a reader is nearly always in the WAL, so after another thread's
    checkpoint the WAL kept growing (70 MB/s at 3,300 webhooks/s) until a TRUNCATE, which
    stops every write while it cuts the file, held deliveries for up to 130 ms. A PASSIVE
    checkpoint here holds the writer for about 20-35 ms per second of such load and keeps the
    WAL near one interval of writes. Only after a whole idle interval does it also shrink the
    WAL (after a burst)."""

    def __init__(self, conn: sqlite3.Connection, every: float | None) -> None:
        self.conn, self.every = conn, every
        self.last, self.groups = time.monotonic(), 0

    def when_due(self, groups: int) -> None:
        """Checkpoint if ``every`` has passed; ``groups``: the writer's groups so far."""
        if self.every is not None and time.monotonic() - self.last >= self.every:
            self.run(idle=groups == self.groups)
            self.last, self.groups = time.monotonic(), groups

    def run(self, idle: bool) -> None:
        try:
            checkpoint(self.conn, shrink=idle)
        except sqlite3.Error as exc:  # the next one tries again; writes go on meanwhile
            log.warning("WAL checkpoint failed", extra={"error": str(exc)})


def create_private(path: Path) -> None:
    """Create the database file 0600 (and its folder 0700) unless it exists.

    Only ever a new file: closing ANY descriptor of a SQLite file drops every POSIX lock this
    process holds on it, so opening and closing an existing database beside live connections
    would let another process take it for unused and delete its WAL."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def exposed(path: str | Path) -> list[str]:
    """The database files (and folder) that users other than the owner can read."""
    db_path = Path(path)
    candidates = [db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")]
    return [str(p) for p in candidates if p.exists() and p.stat().st_mode & 0o044]


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) of every migration, in order: ``NNNN_name.sql``."""
    found = sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return [(int(f.name[:4]), f.read_text()) for f in found]


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def initialize(path: str | Path) -> int:
    """Bring the database to the latest schema (each migration in its own transaction);
    returns the version. A database newer than this payhook is refused."""
    conn = connect(path, durable=True)
    try:
        version = schema_version(conn)
        known = migrations()
        latest = known[-1][0]
        if version > latest:
            raise StorageUnavailableError(
                f"{path}: schema version {version} is newer than this payhook knows ({latest})"
            )
        for number, sql in known:
            if number > version:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;"
                )
                version = number
        return version
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StorageUnavailableError(f"cannot migrate the schema of {path}: {exc}") from exc
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


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Reads inside see one state of the database (a read transaction on ``conn``)."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


class Component:
    """A SQLite component: reads on its own connection (or the one given), writes through
    ``writer`` when given (see ``run_write``)."""

    def __init__(
        self,
        path: str | Path,
        conn: sqlite3.Connection | None = None,
        writer: WriteExecutor | None = None,
    ) -> None:
        self.path = path
        self.conn = conn or connect(path)
        self.writer = writer

    def close(self) -> None:
        self.conn.close()


def run_write(
    conn: sqlite3.Connection, writer: WriteExecutor | None, fn: Callable[[sqlite3.Connection], T]
) -> T:
    """Run ``fn`` in a write transaction: through the shared writer when the process has one
    (no lock contention, shared commits), else on ``conn`` (CLI commands, tests)."""
    if writer is not None:
        return writer.call(fn)
    with Transaction(conn) as tx:
        return fn(tx)
