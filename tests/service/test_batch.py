"""BatchWorker (the embedded workers' processing) on the real SQLite backend: a batch is one
background write, its plans apply in order, and whatever fails, conflicts or races, each
webhook's effects happen exactly once."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator

import pytest

from payhook.backends.sqlite import GroupCommitWriter, SqliteQueue, SqliteStore, initialize
from payhook.backends.sqlite.writer import Group
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook
from payhook.service.batch import BatchWorker
from tests.backends.sqlite.helpers import stored, stripe_provider
from tests.conftest import FakeClock, count_rows

RETRY_BASE = 1.0


class Pipeline:
    """The writer, the queue and a BatchWorker as the embedded runtime wires them."""

    def __init__(self, path: str, clock: FakeClock) -> None:
        initialize(path)
        self.path, self.clock = path, clock
        self.writer = GroupCommitWriter(path)
        self.writer.start()
        self.groups: list[Group] = []
        self.writer.on_group = self.groups.append
        self.queue = SqliteQueue(path, max_receives=3, clock=clock, writer=self.writer)
        self.store = SqliteStore(path, writer=self.writer)
        self.worker = self.new_worker(self.store)

    def new_worker(self, store: SqliteStore) -> BatchWorker:
        return BatchWorker(
            {"stripe": stripe_provider(self.clock)},
            store,
            self.queue,
            self.clock,
            batch_size=50,
            visibility_timeout=30,
            retry_base_seconds=RETRY_BASE,
        )

    def deliver(self, *webhooks: StoredWebhook) -> list[str]:
        self.writer.store(webhooks)
        return [w.webhook_id for w in webhooks]

    def work(self, worker: BatchWorker | None = None) -> int:
        """Receive and process until nothing is visible; returns the background writes."""
        worker = worker or self.worker
        before = len(self.groups)
        held, failed = worker.queue.receive(50), []
        for _ in range(20):  # bounded: a few steps finish any test's messages
            if not held and not failed:
                break
            held, failed = worker.step(held, failed, receive=50)
        return sum(g.background for g in self.groups[before:])

    def payment(self, payment_id: str = "pi_1") -> PaymentRecord:
        record = self.store.get_payment("stripe", payment_id)
        assert record is not None
        return record

    def statuses(self, ids: Iterable[str]) -> list[str]:
        found = self.store.get_webhooks(list(ids))
        return [str(found[i].status) for i in ids]

    def outbox_causes(self) -> list[str]:
        rows = self.store.conn.execute("SELECT body FROM outbox ORDER BY rowid").fetchall()
        return [json.loads(row[0])["cause"]["webhookId"] for row in rows]

    def close(self) -> None:
        self.writer.stop()
        self.store.close()


@pytest.fixture
def pipeline(db_path: str, clock: FakeClock) -> Iterator[Pipeline]:
    p = Pipeline(db_path, clock)
    yield p
    p.close()


def refund(clock: FakeClock, amount: int, payment_id: str = "pi_1") -> StoredWebhook:
    return stored(clock, "refund.created", payment_id=payment_id, amount=amount)


def test_a_batch_is_received_then_committed_in_one_background_write(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    ids = pipeline.deliver(*(stored(clock, payment_id=f"pi_{n}") for n in range(10)))
    assert pipeline.work() == 2  # the receive, then the commits (with the next receive)
    assert pipeline.statuses(ids) == ["processed"] * 10
    assert count_rows(pipeline.path, "payments") == 10
    assert pipeline.outbox_causes() == ids
    assert count_rows(pipeline.path, "queue") == 0
    assert pipeline.worker.processed == 10


def test_events_of_one_payment_in_one_batch_apply_in_order_each_at_its_own_version(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    ids = pipeline.deliver(
        stored(clock, payment_id="pi_1", amount=2000),
        refund(clock, 300),
        refund(clock, 400),
    )
    pipeline.work()
    payment = pipeline.payment()
    assert (payment.amount_refunded, payment.version) == (700, 3)
    conn = sqlite3.connect(pipeline.path)
    rows = conn.execute("SELECT data FROM changes WHERE entity = 'payment' ORDER BY seq")
    assert [json.loads(r[0])["version"] for r in rows] == [1, 2, 3]  # one ledger write each
    assert pipeline.outbox_causes() == ids


def test_a_webhook_that_fails_to_plan_fails_alone_and_is_retried_after_the_backoff(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    good = pipeline.deliver(stored(clock, payment_id="pi_1"), stored(clock, payment_id="pi_2"))
    [orphan] = pipeline.deliver(
        StoredWebhook("wh_orphan", "gone", "stripe", "evt_o", "x", b"{}", clock())
    )
    pipeline.work()
    assert pipeline.statuses(good) == ["processed", "processed"]
    webhook = pipeline.store.get_webhook(orphan)
    assert webhook is not None
    assert (webhook.status, webhook.attempts) == ("received", 1)
    assert webhook.error == "PayloadError: provider 'gone' is no longer configured"
    assert pipeline.queue.receive(50) == []  # hidden until its backoff ends
    clock.advance(RETRY_BASE)
    pipeline.work()  # second receive: fails again, backs off twice as long
    clock.advance(2 * RETRY_BASE)
    pipeline.work()  # third and last
    clock.advance(30)
    pipeline.work()  # past max_receives: a dead letter
    assert [d.webhook_id for d in pipeline.queue.dead_letters()] == [orphan]
    assert pipeline.worker.failures == 3


def test_a_commit_the_database_refuses_undoes_only_itself_and_applies_once_later(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    conn = sqlite3.connect(pipeline.path)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.body LIKE '%pi_bad%'"
        " BEGIN SELECT RAISE(ABORT, 'outbox full'); END"
    )
    conn.commit()
    ids = pipeline.deliver(
        stored(clock, payment_id="pi_1"),
        stored(clock, payment_id="pi_bad"),
        stored(clock, payment_id="pi_3"),
    )
    pipeline.work()
    assert pipeline.statuses(ids) == ["processed", "received", "processed"]
    assert pipeline.store.get_payment("stripe", "pi_bad") is None  # nothing half-written
    conn.execute("DROP TRIGGER refuse")
    conn.commit()
    clock.advance(RETRY_BASE)
    pipeline.work()
    assert pipeline.statuses(ids) == ["processed"] * 3
    assert pipeline.payment("pi_bad").version == 1
    assert sorted(pipeline.outbox_causes()) == sorted(ids)


class Interleaving(SqliteStore):
    """A store whose first batch read of payments lets another worker commit right after."""

    def __init__(self, path: str, interruption: Callable[[], object]) -> None:
        super().__init__(path)
        self.interruption: Callable[[], object] | None = interruption

    def get_payments(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], PaymentRecord]:
        found = super().get_payments(keys)
        if self.interruption is not None:
            interruption, self.interruption = self.interruption, None
            interruption()
        return found


def test_a_batch_planned_on_payments_another_worker_changed_is_planned_again(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    pipeline.deliver(stored(clock, payment_id="pi_1", amount=2000))
    pipeline.work()  # pi_1 at version 1
    mine = pipeline.deliver(refund(clock, 100), refund(clock, 200))
    [theirs] = pipeline.deliver(refund(clock, 400))
    queue = pipeline.queue
    held = queue.receive(2)  # this worker's two refunds, chained: versions 2 and 3
    assert [m.webhook_id for m in held] == mine
    other = pipeline.new_worker(pipeline.store)
    store = Interleaving(pipeline.path, lambda: other.step(queue.receive(1), [], receive=0))
    worker = pipeline.new_worker(store)
    # The other worker's refund lands between this batch's read and its write: pi_1 is now
    # at version 2, the version this batch's second refund expects; it must not apply on
    # top of a write that failed.
    again, failed = worker.step(held, [], receive=0)
    assert (again, failed) == (held, [])
    again, failed = worker.step(again, [], receive=0)
    assert (again, failed) == ([], [])
    payment = pipeline.payment()
    assert (payment.amount_refunded, payment.version) == (700, 4)
    assert sorted(pipeline.outbox_causes()[1:]) == sorted([*mine, theirs])
    store.close()


def test_messages_with_nothing_left_to_do_are_acknowledged(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    [webhook_id] = pipeline.deliver(stored(clock, payment_id="pi_1"))
    pipeline.work()
    assert pipeline.queue.replay(webhook_id)  # processed again: the ledger has the fact
    pipeline.work()
    assert count_rows(pipeline.path, "queue") == 0
    assert pipeline.payment().version == 1
    assert pipeline.outbox_causes() == [webhook_id]


class StopOnceCaughtUp(threading.Event):
    """A stop event the worker trips the first time it waits: when it has caught up."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.left_when_waiting: list[int] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.left_when_waiting.append(count_rows(self.pipeline.path, "queue"))
        self.set()
        return True


def test_a_backlog_goes_in_back_to_back_batches_each_received_with_the_one_before(
    db_path: str, clock: FakeClock
) -> None:
    pipeline = Pipeline(db_path, clock)
    try:
        ids = pipeline.deliver(*(stored(clock, payment_id=f"pi_{n}") for n in range(12)))
        pipeline.groups.clear()  # the delivery's own group
        pipeline.worker.batch_size = 5
        stop = StopOnceCaughtUp(pipeline)
        pipeline.worker.run(stop, poll_seconds=30)
        assert pipeline.statuses(ids) == ["processed"] * 12
        # receive 5; commit 5 + receive 5; commit 5 + receive 2 (short: caught up); commit 2
        assert [g.background for g in pipeline.groups] == [1, 1, 1, 1]
        assert stop.left_when_waiting == [0]  # it waited only once nothing was left
    finally:
        pipeline.close()
