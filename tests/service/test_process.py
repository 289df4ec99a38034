"""The Processor on the real SQLite backend, fed signed Stripe webhooks.

Exactly-once effects: a webhook processed twice, redelivered or replayed changes the ledger
once; a failure inside the commit changes nothing; a concurrent change is retried. Whatever
the arrival order, a payment ends in the same ledger row with one outbox row per change.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payhook.backends.sqlite import (
    GroupCommitWriter,
    SqliteQueue,
    SqliteStore,
    Transaction,
    initialize,
)
from payhook.backends.sqlite.schema import ENQUEUE
from payhook.core.ledger import PaymentRecord, PaymentStatus
from payhook.core.model import StoredWebhook, WebhookRequest, webhook_id_for
from payhook.core.ports import ProcessingCommit
from payhook.errors import ConcurrencyError
from payhook.providers.base import ProviderConfig
from payhook.providers.stripe import StripeProvider, sample_event, stripe_signature
from payhook.service.ingest import Ingest
from payhook.service.process import CANONICAL_EVENT_TYPE, Outcome, Processor, ProcessResult
from tests.conftest import FakeClock

SECRET = "whsec_process_test"
VISIBILITY_TIMEOUT = 30.0
RAM_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None


def stripe_event(
    event_type: str, event_id: str, created: float, amount: int = 2000, **obj: Any
) -> dict[str, Any]:
    """A realistic Stripe event about payment pi_1, with a chosen id, time and object fields."""
    event = sample_event(event_type, int(created), payment_id="pi_1", amount=amount)
    event["id"] = event_id
    event["data"]["object"].update(obj)
    return event


class Pipeline:
    """Ingest (group-commit writer) -> queue -> Processor, as the embedded runtime wires them."""

    def __init__(self, path: str, clock: FakeClock) -> None:
        initialize(path)
        self.path = path
        self.clock = clock
        self.provider = StripeProvider(ProviderConfig("stripe", "stripe", (SECRET,)), clock)
        self.providers = {"stripe": self.provider}
        self.ingest = Ingest(self.providers, clock)
        self.writer = GroupCommitWriter(path)
        self.writer.start()
        self.store = SqliteStore(path)
        self.queue = SqliteQueue(path, visibility_timeout=VISIBILITY_TIMEOUT, clock=clock)
        self.processor = Processor(self.providers, self.store, clock)

    def close(self) -> None:
        self.writer.stop()
        self.store.close()
        self.queue.conn.close()

    def deliver(self, event: dict[str, Any]) -> str:
        """Sign and ingest one event (the HTTP path without HTTP); returns its webhook id."""
        body = json.dumps(event).encode()
        now = int(self.clock())
        header = f"t={now},v1={stripe_signature(SECRET, now, body)}"
        response = self.ingest.receive(
            "stripe", WebhookRequest(body=body, headers={"stripe-signature": header}), self.writer
        )
        assert response.status == 200
        return webhook_id_for("stripe", event["id"])

    def work(self) -> list[ProcessResult]:
        """One worker pass over every visible message, as ``EmbeddedRuntime`` does it."""
        results = []
        while messages := self.queue.receive(10):
            for message in messages:
                result = self.processor.process(message.webhook_id)
                if result.outcome is not Outcome.PROCESSED:
                    self.queue.delete(message.message_id)
                results.append(result)
        return results

    def payment(self) -> PaymentRecord | None:
        return self.store.get_payment("stripe", "pi_1")

    def outbox(self) -> list[dict[str, Any]]:
        rows = self.store.conn.execute("SELECT body FROM outbox ORDER BY rowid").fetchall()
        return [json.loads(row["body"]) for row in rows]

    def webhook(self, webhook_id: str) -> StoredWebhook:
        webhook = self.store.get_webhook(webhook_id)
        assert webhook is not None
        return webhook


@pytest.fixture
def pipeline(db_path: str, clock: FakeClock) -> Iterator[Pipeline]:
    p = Pipeline(db_path, clock)
    yield p
    p.close()


def without_version(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "version"}


# exactly once --------------------------------------------------------------------------


def test_processing_a_webhook_twice_has_one_effect(pipeline: Pipeline, clock: FakeClock) -> None:
    event = stripe_event("payment_intent.succeeded", "evt_ok", clock())
    webhook_id = pipeline.deliver(event)
    first = pipeline.work()
    assert [r.outcome for r in first] == [Outcome.PROCESSED]

    assert pipeline.processor.process(webhook_id).outcome is Outcome.ALREADY_PROCESSED
    pipeline.deliver(event)  # the provider retries the delivery: acknowledged as a duplicate
    assert pipeline.work() == []

    payment = pipeline.payment()
    assert payment is not None
    assert (payment.status, payment.amount_captured, payment.version) == (
        PaymentStatus.SUCCEEDED,
        2000,
        1,
    )
    assert len(pipeline.outbox()) == 1
    assert pipeline.webhook(webhook_id).attempts == 1


def test_a_crash_after_the_commit_redelivers_nothing(pipeline: Pipeline, clock: FakeClock) -> None:
    webhook_id = pipeline.deliver(stripe_event("payment_intent.succeeded", "evt_ok", clock()))
    [message] = pipeline.queue.receive(10)
    assert pipeline.processor.process(message.webhook_id).outcome is Outcome.PROCESSED
    # The worker dies here, before its own bookkeeping; the visibility timeout expires.
    clock.advance(VISIBILITY_TIMEOUT + 1)
    assert pipeline.queue.receive(10) == []  # the commit removed the message with the effects
    assert pipeline.webhook(webhook_id).status == "processed"
    assert len(pipeline.outbox()) == 1


def test_a_message_redelivered_after_the_commit_has_no_second_effect(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    webhook_id = pipeline.deliver(stripe_event("payment_intent.succeeded", "evt_ok", clock()))
    pipeline.work()
    before = pipeline.payment()
    # As SQS does when the delete is lost: the same message comes back.
    with Transaction(pipeline.store.conn) as conn:
        conn.execute(ENQUEUE, (clock(), clock(), webhook_id))
    assert [r.outcome for r in pipeline.work()] == [Outcome.ALREADY_PROCESSED]
    assert pipeline.queue.depth() == 0
    assert pipeline.payment() == before
    assert len(pipeline.outbox()) == 1


def test_replaying_an_applied_webhook_changes_no_payment_and_publishes_nothing(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    pipeline.deliver(stripe_event("payment_intent.succeeded", "evt_ok", clock()))
    refund_id = pipeline.deliver(
        stripe_event("refund.created", "evt_re", clock() + 5, amount=500, id="re_1")
    )
    pipeline.work()
    before = pipeline.payment()
    assert pipeline.queue.replay(refund_id)
    assert [r.outcome for r in pipeline.work()] == [Outcome.PROCESSED]
    assert pipeline.payment() == before  # same version: no write at all
    assert len(pipeline.outbox()) == 2


def test_a_failure_inside_the_commit_changes_nothing_and_the_retry_applies_once(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    webhook_id = pipeline.deliver(stripe_event("payment_intent.succeeded", "evt_ok", clock()))
    # The last statement of the commit fails: everything before it must roll back.
    pipeline.store.conn.execute(
        "CREATE TEMP TRIGGER outbox_full BEFORE INSERT ON main.outbox"
        " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    [message] = pipeline.queue.receive(10)
    with pytest.raises(sqlite3.IntegrityError):
        pipeline.processor.process(message.webhook_id)
    assert pipeline.webhook(webhook_id).status == "received"
    assert pipeline.payment() is None
    assert pipeline.outbox() == []
    assert pipeline.queue.depth() == 1

    pipeline.store.conn.execute("DROP TRIGGER temp.outbox_full")
    clock.advance(VISIBILITY_TIMEOUT + 1)
    assert [r.outcome for r in pipeline.work()] == [Outcome.PROCESSED]
    payment = pipeline.payment()
    assert payment is not None
    assert payment.version == 1
    assert len(pipeline.outbox()) == 1


# anomalies -----------------------------------------------------------------------------


def test_a_refund_above_the_captured_amount_is_kept_flagged_and_logged(
    pipeline: Pipeline, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.deliver(stripe_event("payment_intent.succeeded", "evt_ok", clock()))
    refund = stripe_event("refund.created", "evt_re", clock() + 5, amount=2500, id="re_big")
    refund["data"]["object"]["metadata"] = {"marker": "body-must-not-be-logged"}
    pipeline.deliver(refund)
    with caplog.at_level(logging.INFO, logger="payhook"):
        results = pipeline.work()

    assert results[-1].anomalies == ["refund_exceeds_captured:re_big"]
    payment = pipeline.payment()
    assert payment is not None
    assert (payment.status, payment.amount_refunded) == (PaymentStatus.SUCCEEDED, 0)
    assert payment.flags == ("refund_exceeds_captured:re_big",)
    assert any(e.refund_id == "re_big" for e in payment.events)
    warnings = [r for r in caplog.records if r.name == "payhook.process" and r.levelno >= 30]
    assert [(r.getMessage(), r.__dict__["anomaly"]) for r in warnings] == [
        ("ledger anomaly: event kept but not applied", "refund_exceeds_captured:re_big")
    ]
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "body-must-not-be-logged" not in logged
    assert pipeline.outbox()[-1]["payment"]["flags"] == ["refund_exceeds_captured:re_big"]


# concurrency ---------------------------------------------------------------------------


class InterleavingStore:
    """A ProcessingStore that lets other workers commit between this one's read and commit."""

    def __init__(self, inner: SqliteStore, interruptions: list[Callable[[], None]]) -> None:
        self.inner = inner
        self.interruptions = interruptions

    def get_webhook(self, webhook_id: str) -> StoredWebhook | None:
        return self.inner.get_webhook(webhook_id)

    def get_payment(self, provider: str, payment_id: str) -> PaymentRecord | None:
        record = self.inner.get_payment(provider, payment_id)
        if self.interruptions:
            self.interruptions.pop(0)()
        return record

    def commit(self, commit: ProcessingCommit) -> bool:
        return self.inner.commit(commit)


def other_worker(pipeline: Pipeline, webhook_id: str) -> Callable[[], None]:
    def run() -> None:
        store = SqliteStore(pipeline.path)
        try:
            result = Processor(pipeline.providers, store, pipeline.clock).process(webhook_id)
            assert result.outcome is Outcome.PROCESSED
        finally:
            store.close()

    return run


def test_a_payment_changed_between_read_and_commit_is_retried(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    pipeline.deliver(stripe_event("payment_intent.succeeded", "evt_ok", clock()))
    pipeline.work()
    first = pipeline.deliver(stripe_event("refund.created", "evt_r1", clock() + 1, 300, id="re_1"))
    second = pipeline.deliver(stripe_event("refund.created", "evt_r2", clock() + 2, 400, id="re_2"))
    store = InterleavingStore(pipeline.store, [other_worker(pipeline, second)])
    result = Processor(pipeline.providers, store, clock).process(first)

    assert result.outcome is Outcome.PROCESSED
    assert result.payments[0].amount_refunded == 700  # the retry re-read the other refund
    payment = pipeline.payment()
    assert payment is not None
    assert (payment.amount_refunded, payment.version) == (700, 3)
    causes = [e["cause"]["webhookId"] for e in pipeline.outbox()]
    assert causes.count(first) == 1
    assert causes.count(second) == 1


def test_two_workers_creating_the_same_payment_conflict_and_one_retries(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    created = pipeline.deliver(stripe_event("payment_intent.created", "evt_p", clock()))
    succeeded = pipeline.deliver(stripe_event("payment_intent.succeeded", "evt_s", clock() + 1))
    store = InterleavingStore(pipeline.store, [other_worker(pipeline, succeeded)])
    assert Processor(pipeline.providers, store, clock).process(created).outcome is Outcome.PROCESSED
    payment = pipeline.payment()
    assert payment is not None
    assert (payment.status, payment.version, len(payment.events)) == (PaymentStatus.SUCCEEDED, 2, 2)


def test_conflicts_on_every_attempt_give_up_without_partial_effect(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    pipeline.deliver(stripe_event("payment_intent.succeeded", "evt_ok", clock()))
    pipeline.work()
    mine = pipeline.deliver(stripe_event("refund.created", "evt_mine", clock() + 1, 100, id="re_m"))
    others = [
        pipeline.deliver(stripe_event("refund.created", f"evt_o{i}", clock() + 2, 10, id=f"re_{i}"))
        for i in range(3)
    ]
    store = InterleavingStore(pipeline.store, [other_worker(pipeline, w) for w in others])
    processor = Processor(pipeline.providers, store, clock, max_conflict_retries=2)
    with pytest.raises(ConcurrencyError):
        processor.process(mine)

    assert pipeline.webhook(mine).status == "received"
    payment = pipeline.payment()
    assert payment is not None
    assert payment.amount_refunded == 30  # the three others only
    assert mine not in [e["cause"]["webhookId"] for e in pipeline.outbox()]
    # Once the others are done, the message's next delivery goes through.
    assert processor.process(mine).outcome is Outcome.PROCESSED


def test_the_published_event_carries_the_version_of_the_ledger_row(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    pipeline.deliver(stripe_event("payment_intent.succeeded", "evt_ok", clock()))
    pipeline.work()
    payment = pipeline.payment()
    assert payment is not None
    assert pipeline.outbox()[0]["payment"]["version"] == payment.version


# any order -----------------------------------------------------------------------------


@st.composite
def stripe_histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One payment's Stripe events, in provider time order, some in the same second."""
    now = 1_700_000_000
    amount = draw(st.integers(100, 100_000))

    def at() -> int:
        nonlocal now
        now += draw(st.sampled_from([0, 1, 30]))
        return now

    events = [stripe_event("payment_intent.created", "evt_created", at(), amount)]
    if draw(st.booleans()):
        events.append(stripe_event("payment_intent.requires_action", "evt_action", at(), amount))
    if draw(st.booleans()):
        events.append(stripe_event("payment_intent.payment_failed", "evt_failed", at(), amount))
    if not draw(st.integers(0, 4)):
        events.append(stripe_event("payment_intent.canceled", "evt_canceled", at(), amount))
        return events
    events.append(stripe_event("payment_intent.succeeded", "evt_succeeded", at(), amount))
    refunded = 0
    for index in range(draw(st.integers(0, 3))):
        part = draw(st.integers(1, amount))
        refunded += part
        fields: dict[str, Any] = {"id": f"re_{index}", "amount": part}
        events.append(stripe_event("refund.created", f"evt_re{index}", at(), **fields))
        if draw(st.booleans()):  # the same refund reported again
            events.append(stripe_event("refund.updated", f"evt_reu{index}", at(), **fields))
    if refunded and draw(st.booleans()):
        total = min(refunded, amount)
        cumulative = {"amount_refunded": total, "refunded": total == amount}
        events.append(stripe_event("charge.refunded", "evt_charge", at(), amount, **cumulative))
    if draw(st.booleans()):
        dispute = {"id": "dp_1"}
        events.append(stripe_event("charge.dispute.created", "evt_dp", at(), amount, **dispute))
        status = draw(st.sampled_from([None, "won", "lost"]))
        if status:
            closed = {**dispute, "status": status}
            events.append(stripe_event("charge.dispute.closed", "evt_dpc", at(), amount, **closed))
    return events


def ledger_row(pipeline: Pipeline) -> tuple[object, ...]:
    row = pipeline.store.conn.execute(
        "SELECT status, currency, amount, amount_refunded FROM payments"
    ).fetchone()
    return tuple(row)


def run_deliveries(path: str, deliveries: list[dict[str, Any]]) -> Pipeline:
    """Deliver and process one by one, checking one outbox row per ledger change."""
    pipeline = Pipeline(path, FakeClock())
    for event in deliveries:
        before = pipeline.payment()
        published = len(pipeline.outbox())
        pipeline.deliver(event)
        pipeline.work()
        after = pipeline.payment()
        assert after is not None
        outbox = pipeline.outbox()
        if before is not None and before.state() == after.state():
            assert len(outbox) == published
        else:
            assert len(outbox) == published + 1
            assert outbox[-1]["type"] == CANONICAL_EVENT_TYPE
            assert without_version(outbox[-1]["payment"]) == without_version(after.summary())
            assert outbox[-1]["previousStatus"] == (str(before.status) if before else None)
    return pipeline


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stripe_histories(), st.data())
def test_any_arrival_order_with_duplicates_ends_in_the_in_order_ledger_row(
    history: list[dict[str, Any]], data: st.DataObject
) -> None:
    repeats = data.draw(st.lists(st.sampled_from(history), max_size=3))
    arrival = data.draw(st.permutations(history + repeats))
    # tmpfs when there is one: the same SQLite code, without waiting on a busy disk's fsync.
    with tempfile.TemporaryDirectory(dir=RAM_DIR) as tmp:
        in_order = run_deliveries(str(Path(tmp, "in_order.db")), history)
        shuffled = run_deliveries(str(Path(tmp, "shuffled.db")), arrival)
        try:
            expected, actual = in_order.payment(), shuffled.payment()
            assert expected is not None
            assert actual is not None
            assert actual.state() == expected.state()
            assert actual.events == expected.events
            assert shuffled.store.counts()["processed"] == len(history)
            assert ledger_row(shuffled) == ledger_row(in_order)
        finally:
            in_order.close()
            shuffled.close()
