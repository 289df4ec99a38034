"""Scheduled reconciliation: the runner finds an event never delivered, stores it through the
writer and raises ``payhook_missed_events_total``; the next round starts from its cursor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from payhook.backends.sqlite import GroupCommitWriter, initialize
from payhook.config import Settings, parse_settings
from payhook.errors import ConfigError
from payhook.runtimes.metrics import Metrics
from payhook.runtimes.reconcile import Reconciler, reconciled_providers
from payhook.service.ingest import Ingest
from tests.backfill.fakes import FakeStripe, serving
from tests.backfill.stripe_world import API_KEY, signed, stripe_events, stripe_section, until
from tests.conftest import count_rows


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[GroupCommitWriter]:
    initialize(tmp_path / "payhook.db")
    writer = GroupCommitWriter(tmp_path / "payhook.db")
    writer.start()
    yield writer
    writer.stop()


def settings(tmp_path: Path, base: str, **reconcile: Any) -> Settings:
    return parse_settings(
        {
            "storage": {"path": str(tmp_path / "payhook.db")},
            "providers": {"stripe": stripe_section(base)},
            "reconcile": {"enabled": True, "interval_seconds": 0.05, **reconcile},
        }
    )


def missed(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("payhook_missed_events_total", {"provider": "stripe"})
    return value or 0.0


def test_a_scheduled_run_finds_the_event_never_delivered_and_raises_the_metric(
    tmp_path: Path, writer: GroupCommitWriter
) -> None:
    events = stripe_events(int(time.time()), payments=1)  # processing, succeeded, refunded
    api = FakeStripe(API_KEY, events)
    metrics = Metrics()
    with serving(api) as base:
        config = settings(tmp_path, base, overlap_seconds=30)
        runner = Reconciler(
            config,
            writer,
            lambda provider, _: metrics.missed_events.labels(provider=provider).inc(),
        )
        ingest = Ingest(runner.providers)
        writer.store([w for e in events[:2] for w in ingest.verify("stripe", signed(e))])
        runner.start()
        try:
            until(lambda: runner.runs >= 2, "the runner never ran twice", timeout=30)
        finally:
            runner.stop()
    assert missed(metrics) == 1.0  # found once, a duplicate afterwards
    db = str(tmp_path / "payhook.db")
    assert count_rows(db, f"webhooks WHERE source = 'api' AND event_id = '{events[2]['id']}'") == 1
    assert count_rows(db, "webhooks WHERE source = 'webhook'") == 2
    gte = [int(s.query["created[gte]"]) for s in api.seen]
    assert abs(gte[0] - (time.time() - 86_400)) < 120  # the first round: the whole window
    assert gte[1] == events[-1]["created"] - 30  # then the newest event seen, less the overlap


def test_a_provider_refusing_the_key_is_reported_and_retried_next_round(
    tmp_path: Path, writer: GroupCommitWriter
) -> None:
    api = FakeStripe("sk_test_another_key_entirely_0")
    with serving(api) as base:
        runner = Reconciler(settings(tmp_path, base), writer)
        runner.start()
        try:
            until(lambda: runner.runs >= 2, "the runner stopped after a failure", timeout=30)
        finally:
            runner.stop()
    assert "refused the credentials" in str(runner.results["stripe"])
    assert len(api.seen) >= 2


def test_reconcile_refuses_a_provider_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'nosuch', not a configured provider"):
        reconciled_providers(settings(tmp_path, "http://127.0.0.1:9", providers=["nosuch"]))
    plain = parse_settings(
        {"providers": {"stripe": {"secrets": ["whsec_backfill_tests_signing_secret"]}}}
    )
    assert reconciled_providers(plain) == []  # by default: those with credentials only


def test_serve_reconciles_and_counts_the_missed_event_in_its_metrics(tmp_path: Path) -> None:
    from tests.backfill.stripe_world import deliver, processed, runtime_sections
    from tests.conftest import running_runtime

    events = stripe_events(int(time.time()), payments=2)  # 5 events
    with serving(FakeStripe(API_KEY, events)) as base:
        sections = runtime_sections(base)
        with running_runtime(tmp_path, **sections) as runtime:  # reconciliation off
            deliver(runtime, events[:4])
        # The runtime `payhook serve` runs, with [reconcile] on: it finds the fifth event.
        sections["reconcile"] = {"enabled": True, "interval_seconds": 0.05}
        with running_runtime(tmp_path, **sections) as runtime:
            assert runtime.reconciler is not None
            until(lambda: runtime.reconciler.runs >= 2, "the runner never ran", timeout=30)  # type: ignore[union-attr]
            until(lambda: processed(tmp_path / "payhook.db") == 5, "never processed")
            registry = runtime.metrics.registry
            missed = registry.get_sample_value(
                "payhook_missed_events_total", {"provider": "stripe"}
            )
            assert missed == 1.0
    assert processed(tmp_path / "payhook.db") == 5


def test_a_disabled_reconciliation_starts_nothing(
    tmp_path: Path, writer: GroupCommitWriter
) -> None:
    api = FakeStripe(API_KEY, stripe_events(int(time.time()), payments=1))
    with serving(api) as base:
        runner = Reconciler(settings(tmp_path, base, enabled=False), writer)
        runner.start()
        runner.stop()
    assert runner.runs == 0
    assert api.seen == []


def test_stopping_ends_a_wait_for_a_rate_limit(tmp_path: Path, writer: GroupCommitWriter) -> None:
    from tests.backfill.fakes import Answer

    api = FakeStripe(API_KEY)
    api.failures = [Answer(429, {"error": {}}, {"retry-after": "3600"})]
    with serving(api) as base:
        runner = Reconciler(settings(tmp_path, base), writer)
        runner.start()
        until(lambda: len(api.seen) == 1, "the runner never asked", timeout=30)
        thread = runner._thread
        runner.stop(timeout=30)
    assert thread is not None
    assert not thread.is_alive()  # the hour-long Retry-After wait ended with stop
    assert "stopped while waiting out a rate limit" in str(runner.results["stripe"])
