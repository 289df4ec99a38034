"""Group commit for ingest: concurrent requests share one durable transaction.

Each request hands its webhooks to one writer thread and waits. The writer takes everything
queued at that moment, inserts webhook rows and their queue rows in ONE transaction with
``synchronous=FULL``, and then wakes every waiter. Durability costs one fsync per group, not
one per request, and a request is acknowledged only after its group is on disk.

Rows go in with multi-row statements: a handful of SQLite calls per group rather than several
per webhook, because each call releases and re-takes the GIL, and under load re-taking it
waits for the event-loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from payhook.backends.sqlite.schema import Transaction, connect
from payhook.core.model import Stored, StoredWebhook
from payhook.errors import PayhookError, PayloadError, StorageUnavailableError

log = logging.getLogger("payhook.sqlite.writer")

_WEBHOOK_COLUMNS = (
    "webhook_id, provider, provider_type, event_id, event_type, status, verified, payload,"
    " received_at, occurred_at, id_signed, conflict"
)
_ROW = "(" + ",".join("?" * 12) + ")"
T = TypeVar("T")
_ROWS_PER_STATEMENT = 500  # 12 columns: far below SQLite's 32766 bound parameters


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


@dataclass(slots=True)
class _Request:
    webhooks: Sequence[StoredWebhook]
    future: Future[list[Stored]] | asyncio.Future[list[Stored]]
    loop: asyncio.AbstractEventLoop | None = None


def insert_webhooks(
    conn: sqlite3.Connection, groups: Sequence[Sequence[StoredWebhook]]
) -> list[list[Stored]]:
    """Insert webhooks (a trigger queues each one); returns what storing did, per group.

    A webhook already stored, or seen earlier in the same call, is a duplicate and gets no
    second queue row. A new webhook whose unsigned event id another delivery already carries
    is stored flagged as a conflict. Outside a transaction, a call of at most
    ``_ROWS_PER_STATEMENT`` webhooks is ONE statement, so it commits atomically on its own.
    """
    fresh: dict[str, StoredWebhook] = {}
    for group in groups:
        for w in group:
            fresh.setdefault(w.webhook_id, w)
    new = list(fresh.values())
    conflicts = _conflicts(conn, [w for w in new if not w.id_signed])
    stored_now: set[str] = set()
    for start in range(0, len(new), _ROWS_PER_STATEMENT):
        batch = new[start : start + _ROWS_PER_STATEMENT]
        stored_now |= _insert_or_ignore(conn, batch, conflicts)
    results: list[list[Stored]] = []
    for group in groups:
        group_results = []
        for w in group:
            if w.webhook_id not in stored_now:
                group_results.append(Stored.DUPLICATE)
            else:
                group_results.append(Stored.CONFLICT if w.webhook_id in conflicts else Stored.NEW)
                stored_now.discard(w.webhook_id)  # a second mention in this call: a duplicate
        results.append(group_results)
    return results


def _conflicts(conn: sqlite3.Connection, unsigned: list[StoredWebhook]) -> set[str]:
    """The webhooks (not stored yet) whose unsigned event id another delivery carries."""
    found: set[str] = set()
    seen: dict[tuple[str, str], str] = {}
    for w in unsigned:
        key = (w.provider, w.event_id)
        other = seen.setdefault(key, w.webhook_id)
        if (
            other != w.webhook_id
            or conn.execute(
                "SELECT 1 FROM webhooks WHERE provider = ? AND event_id = ? AND id_signed = 0"
                " AND webhook_id != ? LIMIT 1",
                (w.provider, w.event_id, w.webhook_id),
            ).fetchone()
        ):
            found.add(w.webhook_id)
    return found


def _insert_or_ignore(
    conn: sqlite3.Connection, batch: list[StoredWebhook], conflicts: set[str]
) -> set[str]:
    """Insert what is not stored yet; returns the ids this statement inserted."""
    params: list[object] = []
    for w in batch:
        params += (
            w.webhook_id,
            w.provider,
            w.provider_type,
            w.event_id,
            w.event_type,
            "received",
            int(w.verified),
            w.payload,
            w.received_at,
            w.occurred_at,
            int(w.id_signed),
            int(w.webhook_id in conflicts),
        )
    rows = conn.execute(
        f"INSERT OR IGNORE INTO webhooks ({_WEBHOOK_COLUMNS}) VALUES "  # noqa: S608
        + ",".join([_ROW] * len(batch))
        + " RETURNING webhook_id",
        params,
    ).fetchall()
    return {row[0] for row in rows}


def _is_storage_failure(exc: Exception) -> bool:
    """The storage itself failed (locked, full, I/O, corrupt): retrying each member alone
    would only multiply the wait. Anything else is something a member brought."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


class GroupCommitWriter:
    """The embedded ``WebhookStore``: thread-safe, usable from threads and from asyncio."""

    #: How long a group waits for SQLite's lock before it fails with 503 (providers retry).
    #: Short, because every write queues behind the waiting group and providers give up on a
    #: delivery after 5-10 s: a 503 must arrive before that.
    busy_timeout_seconds: ClassVar[float] = 2.0
    #: The writer counts as saturated when a group of deliveries commits and its deliveries
    #: plus those already waiting behind it number at least this many, and stays so for
    #: ``saturation_hold_seconds``: long enough to span the gaps between a burst's groups,
    #: short enough that background work resumes as soon as the burst is absorbed. At a
    #: steady 3,000 deliveries/s a group holds one or two and as many arrive meanwhile; in
    #: a burst over 32 connections, 10 to 30 are at the writer. Only ingest-only groups that
    #: follow an ingest-only group count (see ``_commit``), and the group itself counts: in
    #: a burst every connection's delivery may be in one group with none behind it.
    saturation_backlog: ClassVar[int] = 8
    saturation_hold_seconds: ClassVar[float] = 0.05

    def __init__(self, path: str | Path, max_group: int = 1000) -> None:
        self.path = path
        self.max_group = max_group
        self._requests: queue.SimpleQueue[_Request | _Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.groups = 0
        self.webhooks = 0
        self._waiting_lock = threading.Lock()
        self._ingest_waiting = 0
        self._saturated_at = -1e9
        self._after_background = False  # the last group ran background work (calls)
        #: Called after each commit that enqueued webhooks (the runtime wakes its workers).
        self.on_commit: Callable[[], None] | None = None

    def start(self) -> None:
        self._conn = connect(self.path, durable=True, timeout=self.busy_timeout_seconds)
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

    @property
    def running(self) -> bool:
        return self._thread is not None

    def submit(self, webhooks: Sequence[StoredWebhook]) -> Future[list[Stored]]:
        future: Future[list[Stored]] = Future()
        if not self.running:
            future.set_exception(StorageUnavailableError("the writer is not running"))
        else:
            self._count_waiting(1)
            self._requests.put(_Request(webhooks, future))
        return future

    def store(self, webhooks: Sequence[StoredWebhook]) -> list[Stored]:
        return self.submit(webhooks).result()

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next group transaction, in a savepoint of its own, and return
        its result once the group is committed. An exception from ``fn`` undoes only its own
        writes and is raised here; a failed commit raises StorageUnavailableError."""
        return self.submit_call(fn).result()

    def submit_call(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """``call`` without waiting: calls submitted together share a commit."""
        future: Future[T] = Future()
        if not self.running:
            future.set_exception(StorageUnavailableError("the writer is not running"))
        else:
            self._requests.put(_Call(fn, future))
        return future

    async def store_async(self, webhooks: Sequence[StoredWebhook]) -> list[Stored]:
        if not self.running:
            raise StorageUnavailableError("the writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Stored]] = loop.create_future()
        self._count_waiting(1)
        self._requests.put(_Request(webhooks, future, loop))
        return await future

    @property
    def ingest_waiting(self) -> int:
        """Ingest requests submitted and not yet taken into a group."""
        return self._ingest_waiting

    @property
    def saturated(self) -> bool:
        """Deliveries are arriving faster than single groups absorb them: a group of
        deliveries committed within the last ``saturation_hold_seconds`` with, counting those
        already waiting behind it, ``saturation_backlog`` or more at the writer. Background
        work (processing, audit, checkpoints) defers to acknowledgments while this holds."""
        return time.monotonic() - self._saturated_at < self.saturation_hold_seconds

    def _count_waiting(self, delta: int) -> None:
        with self._waiting_lock:
            self._ingest_waiting += delta

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._requests.get()
            if first is None:
                break
            group: list[_Request | _Call] = [first]
            while len(group) < self.max_group:
                try:
                    item = self._requests.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            self._commit(group)

    def _commit(self, group: list[_Request | _Call]) -> None:
        requests = [item for item in group if isinstance(item, _Request)]
        calls = [item for item in group if isinstance(item, _Call)]
        if requests:
            self._count_waiting(-len(requests))
        outcome: list[list[Stored]] | BaseException
        try:
            outcome, results = self._write(requests, calls)
        except Exception as exc:  # every waiter must hear back, whatever went wrong
            if len(group) > 1 and not _is_storage_failure(exc):
                # Something one member brought: each goes alone, so only that one fails.
                log.warning(
                    "group commit failed; committing its members one by one",
                    extra={"requests": len(group), "error": type(exc).__name__},
                )
                for item in group:
                    self._commit_alone(item)
                return
            outcome, results = self._failed(exc, requests, calls)
        # Deliveries that piled up behind background work say nothing about their own rate
        # (and counting them would let a long processing commit pause processing, which
        # lengthens the next one): only a backlog built while the writer did ingest counts.
        if (
            requests
            and not calls
            and not self._after_background
            and len(requests) + self._ingest_waiting >= self.saturation_backlog
        ):
            self._saturated_at = time.monotonic()  # deliveries pile up faster than groups go
        self._after_background = bool(calls)
        self._settle(requests, calls, outcome, results)

    def _commit_alone(self, item: _Request | _Call) -> None:
        requests = [item] if isinstance(item, _Request) else []
        calls = [item] if isinstance(item, _Call) else []
        outcome: list[list[Stored]] | BaseException
        try:
            outcome, results = self._write(requests, calls)
        except Exception as exc:
            outcome, results = self._failed(exc, requests, calls)
        self._settle(requests, calls, outcome, results)

    def _write(
        self, requests: list[_Request], calls: list[_Call]
    ) -> tuple[list[list[Stored]], list[tuple[bool, Any]]]:
        """One group in one transaction: the webhooks, then each call in its savepoint."""
        assert self._conn is not None
        batches = [r.webhooks for r in requests]
        results: list[tuple[bool, Any]] = []
        if not calls and sum(len(b) for b in batches) <= _ROWS_PER_STATEMENT:
            # Ingest alone is one INSERT: it commits (durably) by itself, and each SQLite
            # call the writer saves is a GIL hand-off it does not wait for under load.
            outcome = insert_webhooks(self._conn, batches)
        else:
            with Transaction(self._conn) as conn:
                outcome = insert_webhooks(conn, batches)
                results = [_in_savepoint(conn, call.fn) for call in calls]
        self.groups += 1
        self.webhooks += sum(len(b) for b in batches)
        return outcome, results

    def _failed(
        self, exc: Exception, requests: list[_Request], calls: list[_Call]
    ) -> tuple[BaseException, list[tuple[bool, Any]]]:
        error: PayhookError
        if _is_storage_failure(exc) or len(requests) + len(calls) > 1:
            log.error(
                "group commit failed",
                extra={"requests": len(requests) + len(calls), "error": str(exc)},
            )
            error = StorageUnavailableError(f"storage unavailable: {exc}")
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
        for call, (ok, value) in zip(calls, results, strict=True):
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)
        _resolve(requests, outcome)
        if self.on_commit is not None and requests and not isinstance(outcome, BaseException):
            self.on_commit()


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


def _resolve(group: list[_Request], outcome: list[list[Stored]] | BaseException) -> None:
    """Wake every waiter: thread futures directly, asyncio futures with one call per loop."""
    per_loop: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[Stored]], object]]
    ] = {}
    for index, request in enumerate(group):
        result = outcome if isinstance(outcome, BaseException) else outcome[index]
        if request.loop is None:
            assert isinstance(request.future, Future)
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)
        else:
            assert isinstance(request.future, asyncio.Future)
            per_loop.setdefault(request.loop, []).append((request.future, result))
    for loop, items in per_loop.items():
        # A loop closed meanwhile raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[asyncio.Future[list[Stored]], object]]) -> None:
    for future, result in items:
        if future.done():  # the request was cancelled (client went away)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)  # type: ignore[arg-type]
