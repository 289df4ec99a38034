"""``processing.separate_process``: a second process processes and audits what the server
stores; it is started again when it dies, stops with the runtime, and stops when the server
is killed."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from payhook.backends.sqlite import SqliteAuditLog
from payhook.backends.sqlite.turns import WriteTurns
from payhook.core.chain_key import HmacChainKey
from payhook.runtimes import processing
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.service.audit import verify_log
from tests.conftest import AUDIT_TEST_KEY, count_rows, running_runtime, until
from tests.runtimes.helpers import deliver, processed_count

STRIPE = {"stripe": {"secrets": ["whsec_processing_process_tests"]}}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[EmbeddedRuntime]:
    with running_runtime(
        tmp_path,
        processing={"separate_process": True, "poll_interval_seconds": 0.01},
        providers=STRIPE,
    ) as rt:
        rt.supervise_seconds = 0.05
        yield rt


def _deliver(runtime: EmbeddedRuntime, count: int = 1) -> None:
    for _ in range(count):
        deliver(runtime)


def test_another_process_processes_and_audits_every_webhook(runtime: EmbeddedRuntime) -> None:
    assert runtime.processing is not None
    assert runtime.processing.pid not in (None, os.getpid())
    _deliver(runtime, 50)
    until(lambda: processed_count(runtime) == 50, "not every webhook was processed")
    until(lambda: count_rows(runtime.path, "changes") == 0, "the audit never caught up")
    assert count_rows(runtime.path, "audit") == 150  # stored, processed, payment: each
    log = SqliteAuditLog(runtime.path)
    with log.snapshot():
        report = verify_log(log, HmacChainKey(AUDIT_TEST_KEY), log)
    log.conn.close()
    assert report.ok, report.to_dict()
    assert report.payments == 50
    until(lambda: runtime.processed == 50, "the child's reports never arrived")
    assert runtime.failures == 0
    assert runtime.metrics.processing_lag._sum.get() > 0  # lags reported into the histogram
    figures = runtime.figures()
    assert figures.workers_alive == figures.workers_expected


def test_a_dead_processing_process_is_started_again(runtime: EmbeddedRuntime) -> None:
    assert runtime.processing is not None
    first = runtime.processing.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    until(lambda: runtime.restarts >= 1, "the supervisor never noticed")
    until(lambda: runtime.processing.alive, "never started again")  # type: ignore[union-attr]
    assert runtime.processing.pid != first
    _deliver(runtime, 5)
    until(lambda: processed_count(runtime) == 5, "the new process does not process")


def test_a_sigterm_to_the_process_leaves_it_to_the_server_to_stop(
    runtime: EmbeddedRuntime,
) -> None:
    # systemd's stop signals every process of the service: the child must finish its batch
    # and stop when serve tells it (EOF), not at once.
    _deliver(runtime)
    until(lambda: processed_count(runtime) == 1, "not processing yet")  # past its start-up
    assert runtime.processing is not None
    pid = runtime.processing.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    _deliver(runtime, 5)
    until(lambda: processed_count(runtime) == 6, "it stopped processing")
    assert (runtime.processing.pid, runtime.restarts) == (pid, 0)


def test_stopping_the_runtime_stops_the_process(tmp_path: Path) -> None:
    with running_runtime(
        tmp_path, processing={"separate_process": True}, providers=STRIPE
    ) as runtime:
        assert runtime.processing is not None
        pid = runtime.processing.pid
        _deliver(runtime, 20)
    assert pid is not None
    assert not _running(pid)
    # Nothing is lost: what it did not get to is still queued for the next start.
    assert processed_count(runtime) + count_rows(runtime.path, "queue") == 20


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_process_stops_when_the_server_is_killed(tmp_path: Path) -> None:
    config = tmp_path / "payhook.toml"
    config.write_text(
        f'[server]\nport = 0\n[admin]\nenabled = false\n[storage]\npath = "payhook.db"\n'
        f'[audit]\nkey = "{AUDIT_TEST_KEY}"\n[processing]\nseparate_process = true\n'
        '[providers.stripe]\nsecrets = ["whsec_processing_process_tests"]\n'
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "payhook", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "payhook: serving ...": started
        until(lambda: _children(server.pid) != [], "no processing process")
        (child,) = _children(server.pid)
        server.send_signal(signal.SIGKILL)
        server.wait()
        until(lambda: not _running(child) or _zombie(child), "it outlived the server")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == parent:  # state, then the parent's pid
            found.append(int(stat.parent.name))
    return found


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped meanwhile
        return False


def test_a_process_that_keeps_the_writer_waiting_is_killed_and_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopped (SIGSTOP) while it holds its turn, as a hung process would: deliveries would
    wait for ever, since a lock wait cannot time out. The supervisor kills it instead."""
    monkeypatch.setattr(processing, "HOLD_LIMIT_SECONDS", 0.5)
    # What the killed process held comes back after the visibility timeout: short here.
    options = {"poll_interval_seconds": 0.01, "visibility_timeout_seconds": 1.0}
    with running_runtime(tmp_path, processing=options, providers=STRIPE) as runtime:
        runtime.supervise_seconds = 0.05
        _kill_it_while_it_holds_its_turn(runtime, caplog)


def _kill_it_while_it_holds_its_turn(
    runtime: EmbeddedRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    assert runtime.processing is not None
    assert runtime.writer.turns is not None
    turns = runtime.writer.turns
    busy = threading.Event()

    def keep_delivering() -> None:  # the child always has work, so it often holds the turn
        while not busy.is_set():
            request = runtime.providers["stripe"].sample_request("payment_intent.succeeded")
            runtime.writer.store(runtime.ingest.verify("stripe", request))

    loader = threading.Thread(target=keep_delivering)
    loader.start()
    stuck = None
    try:
        for attempt in range(200):  # stop it until it is caught holding its turn
            pid = runtime.processing.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            if _writer_blocked(turns):
                stuck = pid
                break
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.005 + attempt % 7 * 0.003)  # let it run on to another point
        assert stuck is not None, "never caught holding its turn"
        with caplog.at_level(logging.ERROR, logger="payhook.processing"):
            until(lambda: runtime.processing.pid != stuck, "the stuck process was left")  # type: ignore[union-attr]
            until(lambda: turns.writer_waiting() == 0, "the writer still waits")
        until(lambda: not _running(stuck) or _zombie(stuck), "the stuck process lives")
        assert any("kept the writer waiting" in r.getMessage() for r in caplog.records)
    finally:
        busy.set()
        if stuck is not None and _running(stuck):  # the supervisor failed: fail, not hang
            os.kill(stuck, signal.SIGCONT)
        loader.join()
    stored = count_rows(runtime.path, "webhooks")
    until(lambda: processed_count(runtime) == stored, "the new process does not process")


def _writer_blocked(turns: WriteTurns) -> bool:
    """Whether the writer waits for its turn a while (0.1 s, far beyond any group)."""
    for _ in range(25):
        if turns.writer_waiting() > 0.1:
            return True
        time.sleep(0.01)
    return False
