"""What the embedded runtime does for its operator: a dead background thread is seen by health
and started again, retention purges old payloads in the background, and storage trouble makes
health fail."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from payhook.config import parse_settings
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.service.health import check
from tests.conftest import AUDIT_TEST_KEY, running_runtime, until
from tests.runtimes.helpers import deliver

STRIPE = {"stripe": {"secrets": ["whsec_runtime_tests"]}}


def test_a_dead_background_thread_fails_health_until_it_is_restarted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="payhook.embedded")
    settings = parse_settings(
        {
            "storage": {"path": str(tmp_path / "payhook.db")},
            "audit": {"key": AUDIT_TEST_KEY},
            "providers": STRIPE,
        }
    )
    runtime = EmbeddedRuntime(settings)
    runtime.supervise_seconds = 3600  # this test restarts by hand, to see the failure first
    runtime.start()
    try:
        assert check(runtime.figures())["status"] == "pass"
        runs: list[int] = []
        release = threading.Event()

        def dies_once() -> None:
            runs.append(1)
            if len(runs) == 1:
                raise RuntimeError("a bug in a background loop")
            release.wait(10)

        runtime._spawn(dies_once, "payhook-test-loop")
        until(lambda: not runtime._threads["payhook-test-loop"][1].is_alive(), "thread died")
        document = check(runtime.figures())
        assert document["status"] == "fail"
        assert document["checks"]["workers:alive"][0]["status"] == "fail"

        with caplog.at_level(logging.ERROR, logger="payhook.embedded"):
            assert runtime.restart_dead() == 1
        restarted = [r for r in caplog.records if "restarting" in r.getMessage()]
        assert [r.background_thread for r in restarted] == ["payhook-test-loop"]  # type: ignore[attr-defined]
        assert len(runs) == 2
        figures = runtime.figures()
        assert (figures.worker_restarts, check(figures)["status"]) == (1, "pass")
        # Work goes on after the restart.
        deliver(runtime)
        until(lambda: runtime.processed == 1, "processed after the restart")
        release.set()
    finally:
        runtime.stop()


def test_the_server_purges_payloads_past_retention_in_the_background(tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "storage": {"path": str(tmp_path / "payhook.db"), "retention_days": 30},
            "audit": {"key": AUDIT_TEST_KEY},
            "processing": {"poll_interval_seconds": 0.01},
            "providers": STRIPE,
        }
    )
    runtime = EmbeddedRuntime(settings)
    runtime.retention_first_seconds = 3600
    runtime.start()
    try:
        old, recent = deliver(runtime), deliver(runtime)
        until(lambda: runtime.processed == 2, "both processed")
    finally:
        runtime.stop()
    conn = sqlite3.connect(tmp_path / "payhook.db")
    conn.execute(
        "UPDATE webhooks SET received_at = received_at - 31 * 86400 WHERE webhook_id = ?", (old,)
    )
    conn.commit()

    runtime = EmbeddedRuntime(settings)
    runtime.retention_first_seconds = 0.01
    runtime.start()
    try:
        rows = "SELECT webhook_id, length(payload), purged_at IS NOT NULL FROM webhooks"

        def purged() -> bool:
            return dict((r[0], r[2]) for r in conn.execute(rows)) == {old: 1, recent: 0}

        until(purged, "the old payload purged")
        sizes = {r[0]: r[1] for r in conn.execute(rows)}
        assert sizes[old] == 0
        assert sizes[recent] > 0
        kept = dict(conn.execute("SELECT webhook_id, headers IS NOT NULL FROM webhooks"))
        assert kept == {old: 0, recent: 1}  # the headers go with the payload
    finally:
        runtime.stop()
        conn.close()


def test_health_fails_when_storage_is_not_writable(tmp_path: Path) -> None:
    with running_runtime(tmp_path, providers=STRIPE) as runtime:
        assert runtime.figures().storage_writable
        runtime.writer.stop()
        figures = runtime.figures()
        assert (figures.storage_writable, figures.storage_error) == (
            False,
            "the writer is not running",
        )
        assert check(figures)["status"] == "fail"
        runtime.writer.start()
