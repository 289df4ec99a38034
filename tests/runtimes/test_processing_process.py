"""``processing.separate_process``: a second process processes and audits what the server
stores; it is started again when it dies, stops with the runtime, and stops when the server
is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from payhook.backends.sqlite import SqliteAuditLog
from payhook.core.chain_key import HmacChainKey
from payhook.core.model import Stored
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.service.audit import verify_log
from tests.conftest import AUDIT_TEST_KEY, count_rows, running_runtime, until

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
        request = runtime.providers["stripe"].sample_request("payment_intent.succeeded")
        assert runtime.writer.store(runtime.ingest.verify("stripe", request)) == [Stored.NEW]


def _processed(runtime: EmbeddedRuntime) -> int:
    return count_rows(runtime.path, "webhooks WHERE status = 'processed'")


def test_another_process_processes_and_audits_every_webhook(runtime: EmbeddedRuntime) -> None:
    assert runtime.processing is not None
    assert runtime.processing.pid not in (None, os.getpid())
    _deliver(runtime, 50)
    until(lambda: _processed(runtime) == 50, "not every webhook was processed")
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
    until(lambda: _processed(runtime) == 5, "the new process does not process")


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
    assert _processed(runtime) + count_rows(runtime.path, "queue") == 20


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
    except FileNotFoundError:
        return False
