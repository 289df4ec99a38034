"""The embedded runtime: the group-commit writer (which also checkpoints the WAL), processing
workers, the audit worker and retention over SQLite, and the figures health and metrics are
judged on. It wires threads; what each one does is in the service layer (``BatchWorker``,
``service.audit.run_drain``) and the SQLite backend. A background thread that dies is logged
and started again by the supervisor; until then health says fail."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from payhook.backends.sqlite import GroupCommitWriter, SqliteQueue, SqliteStore, initialize
from payhook.backends.sqlite.audit import embedded_chain_key
from payhook.backends.sqlite.changes import SqliteChangeFeed
from payhook.backends.sqlite.reader import Backlog, SqliteReader
from payhook.backends.sqlite.retention import purge_payloads
from payhook.backends.sqlite.schema import exposed
from payhook.config import Settings
from payhook.core.clock import Clock, system_clock
from payhook.providers import build_providers
from payhook.runtimes.forwarder import OutboxForwarder
from payhook.runtimes.lock import ProcessLock
from payhook.runtimes.metrics import Metrics, StoredState
from payhook.runtimes.processing import ProcessingProcess
from payhook.runtimes.reconcile import Reconciler
from payhook.service.audit import run_drain
from payhook.service.batch import BatchWorker
from payhook.service.health import Figures
from payhook.service.ingest import Ingest

log = logging.getLogger("payhook.embedded")

#: How often the supervisor looks for dead threads, and retention for payloads to purge.
SUPERVISE_SECONDS = 1.0
RETENTION_INTERVAL_SECONDS = 3600.0
RETENTION_FIRST_SECONDS = 10.0  # after start-up, so that start-up is not slowed


class EmbeddedRuntime:
    """Everything ``payhook serve`` runs besides HTTP. ``start`` then ``stop``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The system clock and the configured providers, nothing injected: the processing
        # process builds its own from the same settings, and must see what the server sees.
        self.clock: Clock = system_clock
        self.path = settings.storage.path
        self.providers = build_providers(settings.providers, self.clock)
        self.ingest = Ingest(self.providers, self.clock, settings.server.body_limit_bytes)
        # With ``processing.separate_process`` (the default): the process that processes and
        # audits, and takes turns with the writer. A receive-only node (``server.workers =
        # 0``) processes nothing: no process, the audit thread only.
        separate = settings.processing.separate_process and settings.server.workers > 0
        self.writer = GroupCommitWriter(
            self.path,
            checkpoint_seconds=settings.storage.checkpoint_interval_seconds,
            shared=separate,
        )
        # The audit chain is authenticated with a key from the configuration, never stored in
        # the database: without one, nothing starts.
        self.audit_key = embedded_chain_key(settings.audit.key, "payhook serve")
        # Built here so a bad outbox URL or secret fails before anything starts; its writes
        # go through the writer like every other write.
        self.forwarder = (
            OutboxForwarder(self.path, settings.outbox, self.clock, writer=self.writer)
            if settings.outbox.forward_url
            else None
        )
        self.metrics = Metrics(StoredState(self.backlog, self.clock))
        self.processing = (
            ProcessingProcess(
                settings, self.metrics.processing_lag.observe, self.metrics.processing_failures.inc
            )
            if separate
            else None
        )
        # Reconciliation from the providers' events APIs ([reconcile]): each event found only
        # there raises payhook_missed_events_total{provider} (and logs a warning).
        self.reconciler = (
            Reconciler(
                settings,
                self.writer,
                lambda provider, _: self.metrics.missed_events.labels(provider=provider).inc(),
                clock=self.clock,
                providers=self.providers,
            )
            if settings.reconcile.enabled
            else None
        )
        self._stop = threading.Event()
        #: Background threads by name, with what each runs (the supervisor restarts them).
        self._threads: dict[str, tuple[Callable[[], None], threading.Thread]] = {}
        self._supervisor: threading.Thread | None = None
        self.restarts = 0
        #: How often the supervisor looks for dead threads; retention's first and next runs.
        self.supervise_seconds = SUPERVISE_SECONDS
        self.retention_first_seconds = RETENTION_FIRST_SECONDS
        self.retention_interval_seconds = RETENTION_INTERVAL_SECONDS
        self._lock: ProcessLock | None = None
        self._workers: list[BatchWorker] = []

    @property
    def processed(self) -> int:
        """Messages the processing workers finished (processed, or nothing left to do)."""
        done = self.processing.processed if self.processing is not None else 0
        return done + sum(worker.processed for worker in self._workers)

    @property
    def failures(self) -> int:
        failed = self.processing.failures if self.processing is not None else 0
        return failed + sum(worker.failures for worker in self._workers)

    def backlog(self) -> Backlog:
        reader = SqliteReader(self.path)
        try:
            return reader.backlog(self.settings.outbox.max_attempts)
        finally:
            reader.close()

    def figures(self) -> Figures:
        """What health is judged on, measured now (reads the database: not on the event loop)."""
        error = self.writer.failing
        if not self.writer.alive:
            error = "the writer is not running"
        elif not os.access(self.path, os.W_OK):
            error = f"{self.path} is not writable"
        try:
            backlog = self.backlog()
        except Exception as exc:  # an unreadable database is a failed check, not a 500
            error = error or f"cannot read the database: {type(exc).__name__}"
            backlog = Backlog(0, None, 0, 0)
        now = self.clock()
        return Figures(
            now=now,
            storage_writable=error is None,
            storage_error=error,
            workers_expected=len(self._threads) + (self.processing is not None),
            workers_alive=sum(t.is_alive() for _, t in self._threads.values())
            + (self.processing is not None and self.processing.alive),
            worker_restarts=self.restarts,
            queue_depth=backlog.queue_depth,
            oldest_queued_age_seconds=backlog.oldest_age(now),
            dead_letters=backlog.dead_letters,
            outbox_failed=backlog.outbox_failed,
            processed=self.processed,
            processing_failures=self.failures,
            max_backlog_age_seconds=self.settings.alerts.max_backlog_age_seconds,
        )

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        # First: a second serve must change nothing, migrations included.
        self._lock = ProcessLock.acquire(Path(f"{self.path}.lock"), str(self.path))
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
        self._stop.clear()
        if self.processing is not None:
            self.processing.start()
        else:
            for index in range(self.settings.server.workers):
                self._spawn(self._process_loop, f"payhook-worker-{index}")
            self._spawn(self._audit_loop, "payhook-audit")
        if self.settings.storage.retention_days:
            self._spawn(self._retention_loop, "payhook-retention")
        if self.forwarder is not None:
            self._spawn(functools.partial(self.forwarder.run, self._stop), "payhook-forwarder")
        if self.reconciler is not None:
            self._spawn(functools.partial(self.reconciler.run, self._stop), "payhook-reconcile")
        self._supervisor = threading.Thread(
            target=self._supervise, name="payhook-supervisor", daemon=True
        )
        self._supervisor.start()

    def stop(self) -> None:
        """Let workers finish their current message, commit pending writes, stop.

        The HTTP server has stopped accepting and answered its in-flight requests before this
        runs; the writer stops last because the workers' final commits go through it.
        """
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        if self.processing is not None:
            self.processing.stop()
        for _, thread in self._threads.values():
            thread.join()
        self._threads.clear()
        self.writer.stop()
        if self.forwarder is not None:
            self.forwarder.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                target()
            except Exception:  # logged here, in the log's format; the supervisor restarts it
                log.exception("background thread failed", extra={"background_thread": name})

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads[name] = (target, thread)

    def _supervise(self) -> None:
        while not self._stop.wait(self.supervise_seconds):
            self.restart_dead()

    def restart_dead(self) -> int:
        """Start again every background thread that died (each loop catches what it expects;
        one that dies met a bug or a failure it could not survive); how many were."""
        restarted = 0
        for name, (target, thread) in list(self._threads.items()):
            if not thread.is_alive() and not self._stop.is_set():
                log.error(
                    "background thread died; restarting it", extra={"background_thread": name}
                )
                self._spawn(target, name)
                restarted += 1
        if self.processing is not None and not self._stop.is_set():
            restarted += self.processing.revive(self.writer.turns)
        self.restarts += restarted
        return restarted

    # workers ---------------------------------------------------------------------------

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
        worker = BatchWorker(
            self.providers,
            store,
            queue,
            self.clock,
            batch_size=settings.batch_size,
            visibility_timeout=settings.visibility_timeout_seconds,
            retry_base_seconds=settings.retry_base_seconds,
            on_processed=self.metrics.processing_lag.observe,
            on_failure=self.metrics.processing_failures.inc,
        )
        self._workers.append(worker)
        try:
            worker.run(self._stop, settings.poll_interval_seconds)
        finally:
            store.close()
            queue.conn.close()

    def _audit_loop(self) -> None:
        feed = SqliteChangeFeed(self.path, writer=self.writer)
        try:
            poll = self.settings.processing.poll_interval_seconds
            run_drain(feed, self.audit_key, self._stop, poll_seconds=poll, clock=self.clock)
        finally:
            feed.close()

    def _retention_loop(self) -> None:
        """Purge the payloads of processed webhooks past ``storage.retention_days``, hourly."""
        keep = self.settings.storage.retention_days * 86_400
        wait = self.retention_first_seconds
        while not self._stop.wait(wait):
            wait = self.retention_interval_seconds
            try:
                report = purge_payloads(
                    self.path, older_than=self.clock() - keep, writer=self.writer
                )
            except Exception:
                log.exception("retention purge failed; retrying later")
                continue
            if report.webhooks:
                log.info(
                    "purged payloads past retention",
                    extra={"webhooks": report.webhooks, "payload_bytes": report.payload_bytes},
                )
