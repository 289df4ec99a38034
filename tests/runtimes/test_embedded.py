"""The embedded runtime's workers defer to deliveries while the writer is saturated, but only
for a bounded lag."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from payhook.core.model import Stored
from payhook.runtimes.embedded import EmbeddedRuntime
from tests.conftest import count_rows, running_runtime

MAX_LAG = 0.6


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[EmbeddedRuntime]:
    with running_runtime(
        tmp_path,
        server={"workers": 1},
        processing={"max_lag_seconds": MAX_LAG, "poll_interval_seconds": 0.01},
        providers={"stripe": {"secrets": ["whsec_runtime_tests"]}},
    ) as rt:
        yield rt


def _deliver(runtime: EmbeddedRuntime) -> str:
    request = runtime.providers["stripe"].sample_request("payment_intent.succeeded")
    webhooks = runtime.ingest.verify("stripe", request)
    assert runtime.writer.store(webhooks) == [Stored.NEW]
    return webhooks[0].webhook_id


def _status(runtime: EmbeddedRuntime, webhook_id: str) -> str:
    conn = sqlite3.connect(runtime.path)
    try:
        row = conn.execute("SELECT status FROM webhooks WHERE webhook_id = ?", (webhook_id,))
        return str(row.fetchone()[0])
    finally:
        conn.close()


def _wait_processed(runtime: EmbeddedRuntime, webhook_id: str, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while _status(runtime, webhook_id) != "processed":
        assert time.monotonic() - start < timeout, "never processed"
        time.sleep(0.01)
    return time.monotonic() - start


def _saturate(runtime: EmbeddedRuntime) -> None:
    """As if deliveries kept arriving faster than the writer takes them, from now on."""
    runtime.writer.saturation_hold_seconds = 3600  # type: ignore[misc]
    runtime.writer._saturated_at = time.monotonic()


def test_without_saturation_a_webhook_is_processed_right_away(runtime: EmbeddedRuntime) -> None:
    webhook_id = _deliver(runtime)
    assert _wait_processed(runtime, webhook_id) < MAX_LAG


def test_while_saturated_processing_waits_but_never_past_the_lag_bound(
    runtime: EmbeddedRuntime,
) -> None:
    # Let the worker go back to waiting for work, then saturate and deliver.
    time.sleep(0.1)
    _saturate(runtime)
    received = time.monotonic()
    webhook_id = _deliver(runtime)
    time.sleep(MAX_LAG / 3)
    assert _status(runtime, webhook_id) == "received"  # deferred to the deliveries
    _wait_processed(runtime, webhook_id)
    assert time.monotonic() - received >= MAX_LAG * 0.9  # it waited for the bound, not less


def test_the_audit_trail_also_catches_up_within_the_bound(runtime: EmbeddedRuntime) -> None:
    time.sleep(0.1)
    _saturate(runtime)
    webhook_id = _deliver(runtime)
    _wait_processed(runtime, webhook_id)
    deadline = time.monotonic() + 10
    while count_rows(runtime.path, "changes"):
        assert time.monotonic() < deadline, "the audit trail never caught up"
        time.sleep(0.02)
    # webhook stored, webhook processed, payment created
    assert count_rows(runtime.path, "audit") >= 3


def test_checkpoints_wait_while_saturated_but_not_past_the_lag_bound(tmp_path: Path) -> None:
    with running_runtime(
        tmp_path,
        server={"workers": 0},
        storage={"checkpoint_interval_seconds": 0.05},
        processing={"max_lag_seconds": MAX_LAG},
        providers={"stripe": {"secrets": ["whsec_runtime_tests"]}},
    ) as runtime:
        database = Path(runtime.path)
        time.sleep(0.2)  # start-up writes are checkpointed
        _saturate(runtime)
        before = database.stat().st_size
        saturated_at = time.monotonic()
        for _ in range(50):
            _deliver(runtime)
        time.sleep(MAX_LAG / 3)
        assert database.stat().st_size == before  # still only in the WAL
        deadline = saturated_at + 10
        while database.stat().st_size == before:
            assert time.monotonic() < deadline, "never checkpointed"
            time.sleep(0.01)
        assert time.monotonic() - saturated_at >= MAX_LAG * 0.9
