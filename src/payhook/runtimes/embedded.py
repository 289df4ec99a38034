"""The embedded runtime: the group-commit writer, processing workers, the audit worker and
WAL checkpoints over SQLite. It wires threads; what each one does is in the service layer
(``BatchWorker``, ``service.audit.run_drain``) and the SQLite backend."""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import threading
from pathlib import Path
from typing import IO

from payhook.backends.sqlite import GroupCommitWriter, SqliteQueue, SqliteStore, connect, initialize
from payhook.backends.sqlite.audit import embedded_chain_key
from payhook.backends.sqlite.changes import SqliteChangeFeed
from payhook.backends.sqlite.schema import checkpoint, exposed
from payhook.config import Settings
from payhook.core.clock import Clock, system_clock
from payhook.errors import StorageUnavailableError
from payhook.providers import Provider, build_providers
from payhook.runtimes.forwarder import OutboxForwarder
from payhook.service.audit import run_drain
from payhook.service.ingest import Ingest
from payhook.service.process import BatchWorker

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
        self._threads: list[threading.Thread] = []
        self._lock_file: IO[str] | None = None
        self._workers: list[BatchWorker] = []

    @property
    def processed(self) -> int:
        """Messages the processing workers finished (processed, or nothing left to do)."""
        return sum(worker.processed for worker in self._workers)

    @property
    def failures(self) -> int:
        return sum(worker.failures for worker in self._workers)

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

    def _checkpoint_loop(self) -> None:
        # A checkpoint copies committed WAL frames into the database file without blocking
        # the writer (PASSIVE), so it never pauses, under any load.
        conn = connect(self.path)
        while not self._stop.wait(self.settings.storage.checkpoint_interval_seconds):
            try:
                checkpoint(conn)
            except Exception:
                log.exception("checkpoint failed; retrying")
        checkpoint(conn)
        conn.close()
