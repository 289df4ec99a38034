"""The embedded runtime: group-commit writer, processing workers and audit worker over SQLite."""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

from payhook.backends.sqlite import (
    GroupCommitWriter,
    QueueMessage,
    SqliteAuditLog,
    SqliteQueue,
    SqliteStore,
    connect,
    initialize,
)
from payhook.backends.sqlite.audit import embedded_chain_key
from payhook.backends.sqlite.schema import checkpoint, exposed
from payhook.config import Settings
from payhook.core.clock import Clock, system_clock
from payhook.errors import ConcurrencyError, StorageUnavailableError
from payhook.providers import Provider, build_providers
from payhook.runtimes.forwarder import OutboxForwarder
from payhook.service.ingest import Ingest
from payhook.service.process import Outcome, Plan, Processor

log = logging.getLogger("payhook.embedded")


class EmbeddedRuntime:
    """Everything ``payhook serve`` runs besides HTTP. ``start`` then ``stop``."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock = system_clock,
        providers: dict[str, Provider] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.path = settings.storage.path
        self.providers = (
            providers if providers is not None else build_providers(settings.providers, clock)
        )
        self.ingest = Ingest(self.providers, clock, settings.server.body_limit_bytes)
        self.writer = GroupCommitWriter(self.path)
        # The audit chain is authenticated with a key from the configuration, never stored in
        # the database: without one, nothing starts.
        self.audit_key = embedded_chain_key(settings.audit.key, "payhook serve")
        # Built here so a bad outbox URL or secret fails before anything starts; its writes
        # go through the writer like every other write.
        self.forwarder = (
            OutboxForwarder(self.path, settings.outbox, clock, writer=self.writer)
            if settings.outbox.forward_url
            else None
        )
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock_file: IO[str] | None = None
        self.processed = 0
        self.failures = 0

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._acquire_lock()  # first: a second serve must change nothing, migrations included
        initialize(self.path)
        for path in exposed(self.path):
            log.warning(
                "the database is readable by other users; it holds payloads with personal"
                " data: chmod 600 it",
                extra={"path": path},
            )
        released = SqliteQueue(self.path, clock=self.clock).release_in_flight()
        if released:
            log.info("resuming messages left in flight", extra={"messages": released})
        self.writer.start()
        self.writer.on_commit = self._wakeup.set
        self._stop.clear()
        for index in range(self.settings.server.workers):
            self._spawn(self._process_loop, f"payhook-worker-{index}")
        self._spawn(self._audit_loop, "payhook-audit")
        self._spawn(self._checkpoint_loop, "payhook-checkpoint")
        if self.forwarder is not None:
            self._spawn(functools.partial(self.forwarder.run, self._stop), "payhook-forwarder")

    def stop(self) -> None:
        """Let workers finish their current message, commit pending writes, stop.

        The HTTP server has stopped accepting and answered its in-flight requests before this
        runs; the writer stops last because the workers' final commits go through it.
        """
        self._stop.set()
        self._wakeup.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self.writer.stop()
        if self.forwarder is not None:
            self.forwarder.close()
        self._release_lock()

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _acquire_lock(self) -> None:
        lock_path = Path(f"{self.path}.lock")
        if not lock_path.parent.exists():
            lock_path.parent.mkdir(mode=0o700, parents=True)
        # Opened without truncating (a second serve must leave the first one's pid alone) and
        # private, like the database.
        handle = os.fdopen(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StorageUnavailableError(
                f"{self.path} is in use by another payhook process"
            ) from None
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # workers ---------------------------------------------------------------------------

    def _idle(self) -> None:
        self._wakeup.wait(self.settings.processing.poll_interval_seconds)
        self._wakeup.clear()

    def _yield_to_ingest(self, store: SqliteStore) -> None:
        """Acknowledging a webhook is what a provider waits for (and times out on); processing
        it, auditing it and checkpointing the WAL are not. While deliveries arrive faster than
        the writer absorbs them, pause, unless the backlog's oldest message is already
        ``max_lag_seconds`` old (then keep up at full speed); no single pause outlasts that
        either. Under steady traffic with capacity to spare the writer is never saturated,
        so nothing pauses."""
        max_lag = self.settings.processing.max_lag_seconds
        started = next_check = time.monotonic()
        while not self._stop.is_set() and self.writer.saturated:
            now = time.monotonic()
            if now - started >= max_lag:
                return
            if now >= next_check:  # a query: not on every step
                if store.oldest_queued_age(self.clock()) >= max_lag:
                    return
                next_check = now + 0.1
            # Coarse steps: each wake-up takes the GIL from the thread answering deliveries.
            self._stop.wait(0.02)

    def _process_loop(self) -> None:
        settings = self.settings.processing
        queue = SqliteQueue(
            self.path,
            visibility_timeout=settings.visibility_timeout_seconds,
            max_receives=settings.max_receives,
            clock=self.clock,
            writer=self.writer,
        )
        store = SqliteStore(self.path, writer=self.writer)
        processor = Processor(self.providers, store, self.clock)
        while not self._stop.is_set():
            self._yield_to_ingest(store)
            try:
                messages = queue.receive(settings.batch_size)
            except Exception:
                log.exception("receive failed; retrying")
                self._stop.wait(1.0)
                continue
            if not messages:
                self._idle()
                continue
            self._process_batch(messages, processor, queue, store)
        store.close()

    def _process_batch(
        self,
        messages: list[QueueMessage],
        processor: Processor,
        queue: SqliteQueue,
        store: SqliteStore,
    ) -> None:
        """Plan every message, then commit the plans together (one shared transaction, each
        plan in its own savepoint). A plan that lost a race is processed again on its own."""
        planned: list[tuple[QueueMessage, Plan]] = []
        for message in messages:
            try:
                planned.append((message, processor.plan(message.webhook_id)))
            except Exception as exc:
                self._failed(message, exc, queue, store)
        with_commit = [(m, p) for m, p in planned if p.commit is not None]
        outcomes = store.commit_many([p.commit for _, p in with_commit if p.commit is not None])
        for (message, plan), outcome in zip(with_commit, outcomes, strict=True):
            try:
                if isinstance(outcome, ConcurrencyError):
                    result = processor.process(message.webhook_id)
                elif isinstance(outcome, Exception):
                    raise outcome
                else:
                    result = processor.finish(plan, outcome)
                if result.outcome is not Outcome.PROCESSED:
                    queue.delete(message.message_id)
                self.processed += 1
            except Exception as exc:
                self._failed(message, exc, queue, store)
        for message, plan in planned:
            if plan.commit is None:  # already processed, dead or missing: just acknowledge
                queue.delete(message.message_id)
                self.processed += 1

    def _failed(
        self, message: QueueMessage, exc: Exception, queue: SqliteQueue, store: SqliteStore
    ) -> None:
        self.failures += 1
        log.warning(
            "processing failed",
            extra={
                "webhook_id": message.webhook_id,
                "receive_count": message.receive_count,
                "error": type(exc).__name__,
            },
        )
        settings = self.settings.processing
        delay = min(
            settings.visibility_timeout_seconds,
            settings.retry_base_seconds * 2 ** (message.receive_count - 1),
        )
        try:
            store.record_failure(message.webhook_id, f"{type(exc).__name__}: {exc}")
            queue.retry_later(message.message_id, delay)
        except Exception:
            log.exception("could not record the failure; the timeout will retry")

    def _checkpoint_loop(self) -> None:
        conn = connect(self.path)
        store = SqliteStore(self.path, conn=conn)
        while not self._stop.wait(self.settings.storage.checkpoint_interval_seconds):
            # A checkpoint writes and syncs the database file, which slows the writer's WAL
            # syncs: like processing, it waits while deliveries saturate the writer (the WAL
            # grows meanwhile, by a few MB a second).
            self._yield_to_ingest(store)
            try:
                checkpoint(conn)
            except Exception:
                log.exception("checkpoint failed; retrying")
        checkpoint(conn)
        conn.close()

    def _audit_loop(self) -> None:
        audit = SqliteAuditLog(self.path, writer=self.writer)
        store = SqliteStore(self.path, writer=self.writer)
        while True:
            try:
                drained = audit.drain(self.audit_key, clock=self.clock)
            except Exception:
                log.exception("audit drain failed; retrying")
                drained = 0
                self._stop.wait(1.0)
            if drained:
                self._yield_to_ingest(store)
                continue
            if self._stop.is_set():
                break
            self._stop.wait(self.settings.processing.poll_interval_seconds * 2)
        store.close()
