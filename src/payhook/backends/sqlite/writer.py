"""The single writer: every write of the process goes through one thread and one connection.

Its one priority rule: **every group commit carries every delivery waiting at the writer and
at most one background write, the oldest.**

A delivery (``store``/``store_async``: webhooks an HTTP request waits on) and a background
write (``call``/``submit_call``: a processing batch, a queue receive, an audit append, an
outbox update) are queued when submitted. The writer thread takes all that is waiting,
commits the deliveries' webhooks with their queue rows (a trigger) and the one background
write in ONE transaction with ``synchronous=FULL``, then answers every waiter; the background
writes left over go, oldest first, one per group, into the next groups. Durability costs one
fsync per group, not one per request, a request is acknowledged only after its group is on
disk, and a delivery never waits behind more than one background write, however many there
are; background writes are never starved either, since every group takes one. Background
work makes each of its writes a batch, to keep its share of the writer small under any load.

Between groups the writer also checkpoints its WAL, once per ``checkpoint_seconds``
(``schema.WalCheckpoints`` says why there). With ``shared``, another process writes too (the
processing process), and each group waits for its turn (``turns.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from payhook.backends.sqlite.schema import Transaction, WalCheckpoints, connect
from payhook.backends.sqlite.turns import WriteTurns
from payhook.backends.sqlite.waiters import answer
from payhook.backends.sqlite.webhooks import ROWS_PER_STATEMENT, insert_webhooks
from payhook.core.model import Stored, StoredWebhook
from payhook.errors import PayhookError, PayloadError, StorageUnavailableError

log = logging.getLogger("payhook.sqlite.writer")

T = TypeVar("T")


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


@dataclass(slots=True)
class _Request:
    webhooks: Sequence[StoredWebhook]
    future: Future[list[Stored]] | asyncio.Future[list[Stored]]
    loop: asyncio.AbstractEventLoop | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """What one group commit carried (``GroupCommitWriter.on_group`` hears of each)."""

    deliveries: int  # requests to store webhooks
    webhooks: int  # the webhooks they carried
    background: int  # background writes: 0 or 1
    committed: bool  # False: the commit failed and every member was answered with an error


def _is_storage_failure(exc: Exception) -> bool:
    """The storage itself failed (locked, full, I/O, corrupt): retrying each member alone
    would only multiply the wait. Anything else is something a member brought."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


class GroupCommitWriter:
    """The embedded ``WebhookStore`` and ``WriteExecutor``: thread-safe, usable from threads
    and from asyncio. ``start`` then ``stop``."""

    #: How long a group waits for SQLite's lock before it fails with 503 (providers retry).
    #: Short, because every write queues behind the waiting group and providers give up on a
    #: delivery after 5-10 s: a 503 must arrive before that.
    busy_timeout_seconds: ClassVar[float] = 2.0

    def __init__(
        self,
        path: str | Path,
        max_group: int = 1000,
        checkpoint_seconds: float | None = None,
        shared: bool = False,
    ) -> None:
        self.path = path
        self.shared = shared  # another process writes too, taking turns (``turns.py``)
        self.turns: WriteTurns | None = None  # while running
        #: How often the writer checkpoints its WAL between groups (None: never).
        self.checkpoint_seconds = checkpoint_seconds
        #: The most items (deliveries and background writes) taken off the queue per group:
        #: bounds one transaction when thousands of connections deliver at once.
        self.max_group = max_group
        self._requests: queue.SimpleQueue[_Request | _Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.groups = 0
        self.webhooks = 0
        #: Called on the writer thread after each group commits (or fails), just before its
        #: waiters are answered: the runtime wakes its workers when webhooks were stored, and
        #: tests see what each group carried. A group that failed because of one member is
        #: not reported; each member then goes in a group of its own, and those are.
        self.on_group: Callable[[Group], None] | None = None
        #: The storage failure of the last group, None once a group commits again (health).
        self.failing: str | None = None

    def start(self) -> None:
        self._conn = connect(self.path, durable=True, timeout=self.busy_timeout_seconds)
        self.turns = WriteTurns(self.path) if self.shared else None
        self._thread = threading.Thread(target=self._run, name="payhook-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._thread is None:
            return
        self._requests.put(None)
        self._thread.join()
        self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.turns is not None:
            self.turns.close()
            self.turns = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def alive(self) -> bool:  # False after ``stop``, or if the thread died
        return self._thread is not None and self._thread.is_alive()

    def submit(self, webhooks: Sequence[StoredWebhook]) -> Future[list[Stored]]:
        future: Future[list[Stored]] = Future()
        if not self.running:
            future.set_exception(StorageUnavailableError("the writer is not running"))
        else:
            self._requests.put(_Request(webhooks, future))
        return future

    def store(self, webhooks: Sequence[StoredWebhook]) -> list[Stored]:
        return self.submit(webhooks).result()

    async def store_async(self, webhooks: Sequence[StoredWebhook]) -> list[Stored]:
        if not self.running:
            raise StorageUnavailableError("the writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Stored]] = loop.create_future()
        self._requests.put(_Request(webhooks, future, loop))
        return await future

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` as a background write: inside a group transaction, in a savepoint of
        its own, and return its result once the group is committed. An exception from ``fn``
        undoes only its own writes and is raised here; a failed commit raises
        StorageUnavailableError."""
        return self.submit_call(fn).result()

    def submit_call(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """``call`` without waiting."""
        future: Future[T] = Future()
        if not self.running:
            future.set_exception(StorageUnavailableError("the writer is not running"))
        else:
            self._requests.put(_Call(fn, future))
        return future

    def _run(self) -> None:
        background: deque[_Call] = deque()  # taken off the queue, not written yet
        stopping = False
        checkpoints = WalCheckpoints(self._conn, self.checkpoint_seconds)  # type: ignore[arg-type]
        while True:
            deliveries: list[_Request] = []
            wait = not background and not stopping
            for taken in range(self.max_group):  # everything waiting, up to max_group
                try:
                    item = self._requests.get(wait and taken == 0, self.checkpoint_seconds)
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                elif isinstance(item, _Call):
                    background.append(item)
                else:
                    deliveries.append(item)
            call = background.popleft() if background else None
            if deliveries or call is not None:
                self._commit(deliveries, call)
            elif stopping:
                checkpoints.run(idle=True)
                return
            checkpoints.when_due(self.groups)

    def _commit(self, deliveries: list[_Request], call: _Call | None) -> None:
        calls = [call] if call is not None else []
        outcome: list[list[Stored]] | BaseException
        try:
            outcome, results = self._write(deliveries, calls)
        except Exception as exc:  # every waiter must hear back, whatever went wrong
            if len(deliveries) + len(calls) > 1 and not _is_storage_failure(exc):
                # Something one member brought: each goes alone, so only that one fails.
                log.warning(
                    "group commit failed; committing its members one by one",
                    extra={"requests": len(deliveries) + len(calls), "error": type(exc).__name__},
                )
                for delivery in deliveries:
                    self._commit([delivery], None)
                if call is not None:
                    self._commit([], call)
                return
            outcome, results = self._failed(exc, deliveries, calls)
        self._settle(deliveries, calls, outcome, results)

    def _write(
        self, requests: list[_Request], calls: list[_Call]
    ) -> tuple[list[list[Stored]], list[tuple[bool, Any]]]:
        """One group in one transaction (in this writer's turn, when shared): the webhooks,
        then the call in its savepoint."""
        batches = [r.webhooks for r in requests]
        turn = self.turns.writer() if self.turns is not None else contextlib.nullcontext()
        with turn:
            outcome, results = self._transaction(batches, calls)
        self.groups += 1
        self.webhooks += sum(len(b) for b in batches)
        self.failing = None
        return outcome, results

    def _transaction(
        self, batches: list[Sequence[StoredWebhook]], calls: list[_Call]
    ) -> tuple[list[list[Stored]], list[tuple[bool, Any]]]:
        assert self._conn is not None
        results: list[tuple[bool, Any]] = []
        if not calls and sum(len(b) for b in batches) <= ROWS_PER_STATEMENT:
            # Ingest alone is one INSERT: it commits (durably) by itself, and each SQLite
            # call the writer saves is a GIL hand-off it does not wait for under load.
            outcome = insert_webhooks(self._conn, batches)
        else:
            with Transaction(self._conn) as conn:
                outcome = insert_webhooks(conn, batches) if batches else []
                results = [_in_savepoint(conn, call.fn) for call in calls]
        return outcome, results

    def _failed(
        self, exc: Exception, requests: list[_Request], calls: list[_Call]
    ) -> tuple[BaseException, list[tuple[bool, Any]]]:
        error: PayhookError
        if _is_storage_failure(exc) or len(requests) + len(calls) > 1 or calls:
            log.error(
                "group commit failed",
                extra={"requests": len(requests) + len(calls), "error": str(exc)},
            )
            error = StorageUnavailableError(f"storage unavailable: {exc}")
            if _is_storage_failure(exc):
                self.failing = str(exc)
        else:  # one delivery that can never be stored: a 400, so its provider stops retrying
            log.warning("a delivery cannot be stored", extra={"error": type(exc).__name__})
            error = PayloadError(f"the event cannot be stored ({type(exc).__name__})")
        return error, [(False, error)] * len(calls)

    def _settle(
        self,
        requests: list[_Request],
        calls: list[_Call],
        outcome: list[list[Stored]] | BaseException,
        results: list[tuple[bool, Any]],
    ) -> None:
        if self.on_group is not None:  # before the waiters wake: they may ask what it did
            committed = not isinstance(outcome, BaseException)
            webhooks = sum(len(r.webhooks) for r in requests)
            self.on_group(Group(len(requests), webhooks, len(calls), committed))
        for call, (ok, value) in zip(calls, results, strict=True):
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)
        answer(requests, outcome)


def _in_savepoint(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]
) -> tuple[bool, Any]:
    conn.execute("SAVEPOINT call")
    try:
        value = fn(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO call")
        conn.execute("RELEASE call")
        return False, exc
    conn.execute("RELEASE call")
    return True, value
