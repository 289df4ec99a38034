"""Group commit for ingest: concurrent requests share one durable transaction.

Each request hands its webhooks to one writer thread and waits. The writer takes everything
queued at that moment, inserts webhook rows and their queue rows in ONE transaction with
``synchronous=FULL``, and then wakes every waiter. Durability costs one fsync per group, not
one per request, and a request is acknowledged only after its group is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from payhook.backends.sqlite.schema import Transaction, connect
from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook
from payhook.errors import StorageUnavailableError

log = logging.getLogger("payhook.sqlite.writer")

_INSERT_WEBHOOK = """
INSERT INTO webhooks (webhook_id, provider, provider_type, event_id, event_type, status,
                      verified, payload, received_at, occurred_at)
VALUES (?, ?, ?, ?, ?, 'received', ?, ?, ?, ?)
ON CONFLICT (webhook_id) DO NOTHING
"""
_ENQUEUE = "INSERT INTO queue (webhook_id, visible_at, enqueued_at) VALUES (?, ?, ?)"

_Request = tuple[Sequence[StoredWebhook], "Future[list[bool]]"]


def insert_webhooks(
    conn: sqlite3.Connection, webhooks: Sequence[StoredWebhook], now: float
) -> list[bool]:
    """Insert webhooks and queue rows inside the caller's transaction; returns duplicate flags."""
    duplicates: list[bool] = []
    for w in webhooks:
        cursor = conn.execute(
            _INSERT_WEBHOOK,
            (
                w.webhook_id,
                w.provider,
                w.provider_type,
                w.event_id,
                w.event_type,
                int(w.verified),
                w.payload,
                w.received_at,
                w.occurred_at,
            ),
        )
        inserted = cursor.rowcount == 1
        if inserted:
            conn.execute(_ENQUEUE, (w.webhook_id, now, now))
        duplicates.append(not inserted)
    return duplicates


class GroupCommitWriter:
    """The embedded ``WebhookStore``: thread-safe, usable from threads and from asyncio."""

    def __init__(self, path: str | Path, clock: Clock = system_clock, max_group: int = 512) -> None:
        self.path = path
        self.clock = clock
        self.max_group = max_group
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.groups = 0
        self.webhooks = 0
        #: Called after each durable commit (the embedded runtime wakes its workers).
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

    def submit(self, webhooks: Sequence[StoredWebhook]) -> Future[list[bool]]:
        future: Future[list[bool]] = Future()
        if self._thread is None:
            future.set_exception(StorageUnavailableError("the writer is not running"))
        else:
            self._requests.put((webhooks, future))
        return future

    def store(self, webhooks: Sequence[StoredWebhook]) -> list[bool]:
        return self.submit(webhooks).result()

    async def store_async(self, webhooks: Sequence[StoredWebhook]) -> list[bool]:
        return await asyncio.wrap_future(self.submit(webhooks))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._requests.get()
            if first is None:
                break
            group = [first]
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

    def _commit(self, group: list[_Request]) -> None:
        assert self._conn is not None
        try:
            now = self.clock()
            with Transaction(self._conn) as conn:
                results = [insert_webhooks(conn, webhooks, now) for webhooks, _ in group]
        except Exception as exc:  # every waiter must hear back, whatever went wrong
            log.error("group commit failed", extra={"requests": len(group), "error": str(exc)})
            error = StorageUnavailableError(f"storage unavailable: {exc}")
            for _, future in group:
                future.set_exception(error)
            return
        self.groups += 1
        self.webhooks += sum(len(w) for w, _ in group)
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)
        if self.on_commit is not None:
            self.on_commit()
