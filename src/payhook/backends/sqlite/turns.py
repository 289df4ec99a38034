"""Two processes writing one database take turns: the server's writer and the processing
process (``processing.separate_process``).

Why not SQLite's own lock: a connection that finds the database locked sleeps and tries
again, waiting longer each time (1, 2, 5, 10 ... 100 ms). Under load the writer commits group
after group, so the processing process kept finding it locked and waited up to 130 ms for
one transaction (processing lag p99 144 ms at a paced 1,000 deliveries/s, against 14 ms with
processing in threads, whose writes ride in the writer's groups).

The rule: **each side writes only while holding the turn lock, and the processing process
holds the turnstile while it waits for the turn, which the writer passes before every group;
so processing waits for at most the group in progress.** Both locks are POSIX record locks on
one file, ``<database>.turns`` (bytes 0 and 1): a waiter sleeps in the kernel and wakes when
the lock is released, instead of polling.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from payhook.backends.sqlite.schema import Transaction, connect

T = TypeVar("T")

_TURN, _TURNSTILE = 0, 1  # the bytes of the file each lock covers


class WriteTurns:
    """The turn and turnstile locks of one database; one instance per process (a process's
    POSIX locks all go when it closes any descriptor of the file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(f"{path}.turns")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._waiting_since: float | None = None  # the writer's, while it waits for its turn

    def close(self) -> None:
        os.close(self._fd)

    def writer_waiting(self) -> float:
        """Seconds the writer has been waiting for its turn (0: not waiting). A lock wait cannot
        time out, so the server's supervisor watches this instead."""
        since = self._waiting_since
        return time.monotonic() - since if since is not None else 0.0

    def _lock(self, byte: int) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, byte)

    def _unlock(self, byte: int) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, byte)

    @contextmanager
    def writer(self) -> Iterator[None]:
        """The server's writer, around each group: pass the turnstile (the processing process
        goes first if it waits there), then hold the turn."""
        self._waiting_since = time.monotonic()
        self._lock(_TURNSTILE)
        self._unlock(_TURNSTILE)
        self._lock(_TURN)
        self._waiting_since = None
        try:
            yield
        finally:
            self._unlock(_TURN)

    @contextmanager
    def guest(self) -> Iterator[None]:
        """The processing process, around each transaction: wait for the turn holding the
        turnstile, so the writer starts no new group before it."""
        self._lock(_TURNSTILE)
        try:
            self._lock(_TURN)
        finally:
            self._unlock(_TURNSTILE)
        try:
            yield
        finally:
            self._unlock(_TURN)


class GuestWriter:
    """The processing process's ``WriteExecutor``: each write one ``BEGIN IMMEDIATE``
    transaction on a connection of its own, in its turn.

    Its commits do not fsync (``synchronous=NORMAL``): they reach the disk with the writer's
    next commit or checkpoint (the WAL is one file, and an fsync covers every frame written
    before it), under load within milliseconds, idle within ``checkpoint_interval_seconds``.
    A power cut before then loses only processing, which is done again from the queue, whose
    rows the writer committed durably. An fsync of its own held the turn twice as long (the
    writer waited 1.6 ms per group instead of 0.8) for no guarantee a delivery needs.
    """

    def __init__(self, path: str | Path, turns: WriteTurns, timeout: float) -> None:
        #: ``timeout``: how long to wait for SQLite's lock (another process than the server,
        #: such as a CLI command, may hold it), as long as the server's writer waits.
        self.conn = connect(path, timeout=timeout)
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # the writer checkpoints
        self.turns = turns

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self.turns.guest(), Transaction(self.conn) as conn:
            return fn(conn)

    def submit_call(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """``call``, done by the time it returns (one thread writes in this process)."""
        future: Future[T] = Future()
        try:
            future.set_result(self.call(fn))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        self.conn.close()
