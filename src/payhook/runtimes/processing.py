"""Processing and the audit trail in a process of their own (``processing.separate_process``,
the default).

Why: one CPython process runs one thread of Python at a time. With processing in threads of
``payhook serve``, the event loop, the writer, the processing workers and the audit worker
share that one core while the machine's other core idles (36% idle CPU at full load on 2
cores). Here the workers' and the audit's Python runs in a second process, in ONE thread: the
worker threads' loop (``BatchWorker.run``), chaining the audit (``service.audit.drain``) after
every batch. Measured on 2 cores, 30 s at 32 connections: about a third more webhooks
acknowledged and processed end to end (4,660 vs 3,399/s) and under half the p99 (18.2 vs 45.2
ms; ``benchmarks/ingest_throughput.py``). One thread matters: a child with several threads
holds SQLite's write lock while each waits for its own GIL, and gained nothing.

The child writes through a connection of its own (each write one ``BEGIN IMMEDIATE``
transaction), taking turns with the server's writer (``backends/sqlite/turns.py``: it waits
for at most the group in progress). Every write is as safe
against another writer as before: commits apply only to webhooks still ``received`` and to the
payment versions they were planned on, the audit appends only onto the head it read, and
messages a dead child held come back after the visibility timeout.

The protocol: the parent writes the settings as one JSON line on the child's stdin and keeps
it open; the child stops (finishing its batch and the audit) at EOF, so it also stops when the
server dies, even by SIGKILL. The child writes one JSON line per step with news on stdout:
``{"processed": n, "failures": n, "lags": [seconds, ...]}``, for metrics and health.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

import msgspec

from payhook.backends.sqlite import GroupCommitWriter, SqliteQueue, SqliteStore
from payhook.backends.sqlite.audit import embedded_chain_key
from payhook.backends.sqlite.changes import SqliteChangeFeed
from payhook.backends.sqlite.turns import GuestWriter, WriteTurns
from payhook.config import Settings
from payhook.core.clock import Clock, system_clock
from payhook.logs import configure as configure_logging
from payhook.providers import build_providers
from payhook.service.audit import drain_or_wait
from payhook.service.batch import BatchWorker

log = logging.getLogger("payhook.processing")

#: How long ``stop`` waits for the child to finish its batch before it kills it.
STOP_SECONDS = 30.0
#: A child that keeps the server's writer waiting for its turn longer than this is killed
#: (and started again): longer than any of its transactions, whose waits for SQLite's lock
#: give up after ``GroupCommitWriter.busy_timeout_seconds``. Stopped or hung, it would hold
#: every delivery.
HOLD_LIMIT_SECONDS = 5.0


class ProcessingProcess:
    """The parent's handle on the child: ``start``, ``alive``, ``stop``; ``processed`` and
    ``failures`` count what every child it started reported."""

    def __init__(
        self,
        settings: Settings,
        on_lag: Callable[[float], None],
        on_failure: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.on_lag, self.on_failure = on_lag, on_failure
        self.processed = 0
        self.failures = 0
        self._child: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        child = subprocess.Popen(
            [sys.executable, "-m", "payhook.runtimes.processing"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C is for serve, which stops it
        )
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write(msgspec.json.encode(self.settings) + b"\n")
        child.stdin.flush()
        self._child = child
        self._reader = threading.Thread(
            target=self._read, args=(child.stdout,), name="payhook-processing-reports", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def revive(self, turns: WriteTurns | None) -> bool:
        """Start the child again if it died, or kill it and start it again if it has kept the
        writer waiting for its turn (``turns``) over ``HOLD_LIMIT_SECONDS``; whether it did."""
        waited = turns.writer_waiting() if turns is not None else 0.0
        if self.alive and waited > HOLD_LIMIT_SECONDS and self._child is not None:
            log.error(
                "the processing process kept the writer waiting; killing it",
                extra={"seconds": round(waited, 1), "pid": self._child.pid},
            )
            self._child.kill()
        elif self.alive:
            return False
        else:
            log.error("the processing process died; starting it again")
        self.stop()  # reaps it
        self.start()
        return True

    def stop(self) -> None:
        """Let the child finish its batch and the audit, then reap it (killed after
        ``STOP_SECONDS``)."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.stdin is not None:
            with contextlib.suppress(BrokenPipeError):  # it died
                child.stdin.close()
        try:
            child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("the processing process did not stop; killing it")
            child.kill()
            child.wait()
        if self._reader is not None:
            self._reader.join()

    def _read(self, reports: IO[bytes]) -> None:
        for line in reports:
            try:
                report: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            self.processed += int(report.get("processed", 0))
            failures = int(report.get("failures", 0))
            self.failures += failures
            for _ in range(failures):
                self.on_failure()
            for lag in report.get("lags", ()):
                self.on_lag(float(lag))
        reports.close()


def run(
    settings: Settings,
    stop: threading.Event,
    report: Callable[[dict[str, Any]], None],
    clock: Clock = system_clock,
) -> None:
    """The child's one thread: a batch, then the audit, until ``stop``; then the last batch
    and the whole audit."""
    path, options = settings.storage.path, settings.processing
    lags: list[float] = []
    turns = WriteTurns(path)
    writer = GuestWriter(path, turns, timeout=GroupCommitWriter.busy_timeout_seconds)
    queue = SqliteQueue(
        path,
        visibility_timeout=options.visibility_timeout_seconds,
        max_receives=options.max_receives,
        clock=clock,
        writer=writer,
    )
    store = SqliteStore(path, writer=writer)
    feed = SqliteChangeFeed(path, writer=writer)
    worker = BatchWorker(
        build_providers(settings.providers, clock),
        store,
        queue,
        clock,
        batch_size=options.batch_size,
        visibility_timeout=options.visibility_timeout_seconds,
        retry_base_seconds=options.retry_base_seconds,
        on_processed=lags.append,
    )
    key = embedded_chain_key(settings.audit.key, "payhook serve")
    reported = {"processed": 0, "failures": 0}

    def report_and_audit() -> bool:
        """After each batch: report what changed, then chain the audit; whether it chained."""
        news = {"processed": worker.processed, "failures": worker.failures}
        if news != reported or lags:
            report({name: news[name] - reported[name] for name in news} | {"lags": lags[:]})
            reported.update(news)
            lags.clear()
        return drain_or_wait(feed, key, stop, clock=clock) > 0

    try:
        worker.run(stop, options.poll_interval_seconds, also=report_and_audit)
        while report_and_audit():  # the whole audit before it stops
            pass
    finally:
        feed.close()
        store.close()
        queue.conn.close()
        writer.close()
        turns.close()


def main() -> int:
    """``python -m payhook.runtimes.processing``: started by ``payhook serve`` only."""
    # Only serve stops it (EOF): a SIGTERM to every process of the service (systemd's
    # default) must not cut its batch short; serve lets it finish, then exits.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    settings = msgspec.json.decode(sys.stdin.buffer.readline(), type=Settings)
    configure_logging(settings.logging.level, settings.logging.format)
    stop = threading.Event()

    def until_eof() -> None:
        sys.stdin.buffer.read()  # returns when serve closes the pipe or dies
        stop.set()

    threading.Thread(target=until_eof, daemon=True).start()

    def report(news: dict[str, Any]) -> None:
        try:
            sys.stdout.write(json.dumps(news) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # serve is gone: finish up, reporting to nobody
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
            stop.set()

    run(settings, stop, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
