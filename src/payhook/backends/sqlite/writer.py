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
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from payhook.backends.sqlite.schema import Transaction, connect
from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook
from payhook.errors import StorageUnavailableError

log = logging.getLogger("payhook.sqlite.writer")

_WEBHOOK_COLUMNS = (
    "webhook_id, provider, provider_type, event_id, event_type, status, verified, payload,"
    " received_at, occurred_at"
)
T = TypeVar("T")
_ROWS_PER_STATEMENT = 500  # 10 columns: far below SQLite's 32766 bound parameters


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


@dataclass(slots=True)
class _Request:
    webhooks: Sequence[StoredWebhook]
    future: Future[list[bool]] | asyncio.Future[list[bool]]
    loop: asyncio.AbstractEventLoop | None = None


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def insert_webhooks(
    conn: sqlite3.Connection, groups: Sequence[Sequence[StoredWebhook]], now: float
) -> list[list[bool]]:
    """Insert webhooks and their queue rows inside the caller's transaction.

    Returns duplicate flags per group. A webhook already stored, or seen earlier in the same
    call, is a duplicate and gets no second queue row.
    """
    ids = list(dict.fromkeys(w.webhook_id for group in groups for w in group))
    existing: set[str] = set()
    for chunk in _chunks(ids, _ROWS_PER_STATEMENT):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT webhook_id FROM webhooks WHERE webhook_id IN ({marks})",  # noqa: S608
            chunk,
        ).fetchall()
        existing.update(row[0] for row in rows)
    fresh: dict[str, StoredWebhook] = {}
    flags: list[list[bool]] = []
    for group in groups:
        group_flags = []
        for w in group:
            duplicate = w.webhook_id in existing or w.webhook_id in fresh
            if not duplicate:
                fresh[w.webhook_id] = w
            group_flags.append(duplicate)
        flags.append(group_flags)
    new = list(fresh.values())
    for start in range(0, len(new), _ROWS_PER_STATEMENT):
        batch = new[start : start + _ROWS_PER_STATEMENT]
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
            )
        conn.execute(
            f"INSERT INTO webhooks ({_WEBHOOK_COLUMNS}) VALUES "  # noqa: S608
            + ",".join(["(?,?,?,?,?,?,?,?,?,?)"] * len(batch)),
            params,
        )
        conn.execute(
            "INSERT INTO queue (webhook_id, visible_at, enqueued_at) VALUES "  # noqa: S608
            + ",".join(["(?,?,?)"] * len(batch)),
            [value for w in batch for value in (w.webhook_id, now, now)],
        )
    return flags


class GroupCommitWriter:
    """The embedded ``WebhookStore``: thread-safe, usable from threads and from asyncio."""

    def __init__(
        self, path: str | Path, clock: Clock = system_clock, max_group: int = 1000
    ) -> None:
        self.path = path
        self.clock = clock
        self.max_group = max_group
        self._requests: queue.SimpleQueue[_Request | _Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.groups = 0
        self.webhooks = 0
        #: Called after each commit that enqueued webhooks (the runtime wakes its workers).
        self.on_commit: Callable[[], None] | None = None

    def start(self) -> None:
        self._conn = connect(self.path, durable=True)
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

    def submit(self, webhooks: Sequence[StoredWebhook]) -> Future[list[bool]]:
        future: Future[list[bool]] = Future()
        if not self.running:
            future.set_exception(StorageUnavailableError("the writer is not running"))
        else:
            self._requests.put(_Request(webhooks, future))
        return future

    def store(self, webhooks: Sequence[StoredWebhook]) -> list[bool]:
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

    async def store_async(self, webhooks: Sequence[StoredWebhook]) -> list[bool]:
        if not self.running:
            raise StorageUnavailableError("the writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        self._requests.put(_Request(webhooks, future, loop))
        return await future

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
        assert self._conn is not None
        requests = [item for item in group if isinstance(item, _Request)]
        calls = [item for item in group if isinstance(item, _Call)]
        outcome: list[list[bool]] | BaseException
        results: list[tuple[bool, Any]] = []
        try:
            with Transaction(self._conn) as conn:
                outcome = insert_webhooks(conn, [r.webhooks for r in requests], self.clock())
                results = [_in_savepoint(conn, call.fn) for call in calls]
        except Exception as exc:  # every waiter must hear back, whatever went wrong
            log.error("group commit failed", extra={"requests": len(group), "error": str(exc)})
            outcome = StorageUnavailableError(f"storage unavailable: {exc}")
            results = [(False, outcome)] * len(calls)
        else:
            self.groups += 1
            self.webhooks += sum(len(r.webhooks) for r in requests)
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


def _resolve(group: list[_Request], outcome: list[list[bool]] | BaseException) -> None:
    """Wake every waiter: thread futures directly, asyncio futures with one call per loop."""
    per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[bool]], object]]] = {}
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


def _settle(items: list[tuple[asyncio.Future[list[bool]], object]]) -> None:
    for future, result in items:
        if future.done():  # the request was cancelled (client went away)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)  # type: ignore[arg-type]
