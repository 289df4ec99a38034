"""The embedded runtime wires the writer, processing and the audit (in a process of their own,
or in threads of the server's) and WAL checkpoints: none of them pauses for deliveries (the
writer's rule gives every group commit one background write; the processing process writes
through its own connections), and stopping loses nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from payhook.backends.sqlite.writer import Group
from payhook.runtimes.embedded import EmbeddedRuntime
from tests.conftest import count_rows, running_runtime, until
from tests.runtimes.helpers import deliver, processed_count

STRIPE = {"stripe": {"secrets": ["whsec_runtime_tests"]}}


#: Both ways to process: ``processing.separate_process`` true (the default) and false.
MODES = pytest.mark.parametrize("separate", [True, False], ids=["process", "threads"])


@pytest.fixture(params=[True, False], ids=["process", "threads"])
def runtime(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EmbeddedRuntime]:
    with running_runtime(
        tmp_path,
        server={"workers": 2},
        processing={"poll_interval_seconds": 0.01, "separate_process": request.param},
        providers=STRIPE,
    ) as rt:
        yield rt


class DeliveriesAlwaysWaiting:
    """After every group commit another delivery is already waiting at the writer, as under
    sustained load, until ``stop``."""

    def __init__(self, runtime: EmbeddedRuntime) -> None:
        self.runtime = runtime
        self.wired = runtime.writer.on_group
        self.stopped = threading.Event()
        self.groups: list[Group] = []
        runtime.writer.on_group = self.on_group
        threading.Thread(target=deliver, args=(runtime,), daemon=True).start()

    def on_group(self, group: Group) -> None:
        if self.wired is not None:
            self.wired(group)
        self.groups.append(group)
        if not self.stopped.is_set():
            request = self.runtime.providers["stripe"].sample_request("payment_intent.succeeded")
            self.runtime.writer.submit(self.runtime.ingest.verify("stripe", request))

    def stop(self) -> None:
        self.stopped.set()
        self.runtime.writer.on_group = self.wired


def test_a_delivered_webhook_is_processed_and_audited(runtime: EmbeddedRuntime) -> None:
    deliver(runtime)
    until(lambda: processed_count(runtime) == 1, "never processed")
    # webhook stored, webhook processed, payment created: all chained
    until(lambda: count_rows(runtime.path, "audit") == 3, "never audited")
    assert runtime.processed == 1
    assert runtime.failures == 0


def test_processing_and_audit_keep_going_while_deliveries_keep_arriving(
    runtime: EmbeddedRuntime,
) -> None:
    load = DeliveriesAlwaysWaiting(runtime)
    try:
        until(lambda: processed_count(runtime) >= 200, "processing waited for the deliveries")
        until(lambda: count_rows(runtime.path, "audit") >= 400, "the audit waited for them")
        busy = [g for g in load.groups if g.deliveries]
        assert all(g.background <= 1 for g in load.groups)
        if runtime.processing is None:  # threads: background writes rode beside deliveries
            assert any(g.background for g in busy)
    finally:
        load.stop()
    until(lambda: count_rows(runtime.path, "queue") == 0, "the queue never drained")
    until(lambda: count_rows(runtime.path, "changes") == 0, "the audit never caught up")
    assert processed_count(runtime) == count_rows(runtime.path, "webhooks")


def test_checkpoints_keep_going_while_deliveries_keep_arriving(tmp_path: Path) -> None:
    with running_runtime(
        tmp_path,
        server={"workers": 0},
        storage={"checkpoint_interval_seconds": 0.05},
        providers=STRIPE,
    ) as runtime:
        database = Path(runtime.path)
        deliver(runtime)
        until(lambda: database.stat().st_size > 0, "start-up writes never checkpointed")
        before = database.stat().st_size
        load = DeliveriesAlwaysWaiting(runtime)
        try:
            until(lambda: database.stat().st_size > before, "no checkpoint under load")
            assert not load.stopped.is_set()  # deliveries were still arriving
        finally:
            load.stop()


@MODES
def test_stopping_loses_nothing_and_a_restart_resumes(tmp_path: Path, separate: bool) -> None:
    settings = {
        "server": {"workers": 2},
        "processing": {"separate_process": separate},
        "providers": STRIPE,
    }
    with running_runtime(tmp_path, **settings) as runtime:  # type: ignore[arg-type]
        ids = [deliver(runtime) for _ in range(300)]
    stored = count_rows(runtime.path, "webhooks")
    processed = processed_count(runtime)
    assert stored == len(ids)
    # Each webhook is processed, or still received with its message queued: none in between.
    assert count_rows(runtime.path, "queue") == stored - processed
    assert count_rows(runtime.path, "webhooks WHERE status = 'received'") == stored - processed
    with running_runtime(tmp_path, **settings) as again:  # type: ignore[arg-type]
        until(lambda: processed_count(again) == stored, "the restart did not resume")
        until(lambda: count_rows(again.path, "changes") == 0, "the audit did not resume")
