"""DynamoProcessingStore: one transaction per webhook, version conditions, lost races."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from payhook.backends.aws.payments import DynamoProcessingStore
from payhook.backends.aws.webhooks import DynamoWebhookStore
from payhook.core import ledger
from payhook.core.ledger import PaymentRecord
from payhook.core.model import Stored, StoredWebhook, WebhookStatus, webhook_id_for
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.core.ports import PaymentWrite, ProcessingCommit
from payhook.errors import ConcurrencyError, StorageUnavailableError
from payhook.providers import build_providers
from payhook.providers.base import Provider, ProviderConfig
from payhook.service.process import Outcome, Processor
from tests.aws.emulator import STRIPE_SECRET, AwsStack, stripe_body
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def processing_store(stack: AwsStack) -> DynamoProcessingStore:
    return DynamoProcessingStore(
        stack.clients.dynamodb,
        webhooks_table=stack.webhooks_table,
        payments_table=stack.payments_table,
    )


def providers(clock: FakeClock) -> dict[str, Provider]:
    config = ProviderConfig.from_mapping("stripe", {"secrets": [STRIPE_SECRET]})
    return build_providers({"stripe": config}, clock)


def store_webhook(stack: AwsStack, clock: FakeClock, event_id: str, body: bytes) -> str:
    webhook = StoredWebhook(
        webhook_id=webhook_id_for("stripe", event_id),
        provider="stripe",
        provider_type="stripe",
        event_id=event_id,
        event_type=json.loads(body)["type"],
        payload=body,
        received_at=clock.now,
        occurred_at=float(json.loads(body)["created"]),
    )
    store = DynamoWebhookStore(
        stack.clients.dynamodb,
        stack.clients.sqs,
        table=stack.webhooks_table,
        queue_url=stack.queue_url,
        retention_seconds=86_400,
        clock=clock,
    )
    assert store.store([webhook]) == [Stored.NEW]
    return webhook.webhook_id


def succeeded(payment_id: str, event_id: str = "evt_1", amount: int = 1000) -> PaymentRecord:
    event = PaymentEvent(
        "stripe", payment_id, PaymentEventKind.SUCCEEDED, event_id, "x", 1.0, amount, "EUR"
    )
    return ledger.apply(None, event)[0]


def test_stored_webhook_reads_back_field_for_field(stack: AwsStack, clock: FakeClock) -> None:
    body = stripe_body("evt_read", "pi_read", created=1_699_999_990)
    webhook_id = store_webhook(stack, clock, "evt_read", body)
    webhook = processing_store(stack).get_webhook(webhook_id)
    assert webhook == StoredWebhook(
        webhook_id=webhook_id,
        provider="stripe",
        provider_type="stripe",
        event_id="evt_read",
        event_type="payment_intent.succeeded",
        payload=body,
        received_at=clock.now,
        status=WebhookStatus.RECEIVED,
        occurred_at=1_699_999_990.0,
        verified=True,
    )
    assert processing_store(stack).get_webhook("wh_missing") is None


def test_commit_writes_webhook_and_payment_in_one_go(stack: AwsStack, clock: FakeClock) -> None:
    webhook_id = store_webhook(stack, clock, "evt_c", stripe_body("evt_c", "pi_c"))
    store = processing_store(stack)
    record = succeeded("pi_c")
    event = {"id": "pe_1", "type": "payment.updated", "provider": "stripe", "paymentId": "pi_c"}

    assert store.commit(ProcessingCommit(webhook_id, 5.0, [PaymentWrite(record, 0)], [event]))

    stored = store.get_payment("stripe", "pi_c")
    assert stored == replace(record, version=1)
    [item] = stack.payment_items()
    assert json.loads(item["publishedEvents"]["S"]) == [event]
    assert (item["amount"]["N"], item["amountRefunded"]["N"]) == ("1000", "0")
    webhook = store.get_webhook(webhook_id)
    assert webhook is not None
    assert (webhook.status, webhook.processed_at, webhook.attempts) == ("processed", 5.0, 1)


def test_commit_for_a_webhook_no_longer_received_changes_nothing(
    stack: AwsStack, clock: FakeClock
) -> None:
    webhook_id = store_webhook(stack, clock, "evt_d", stripe_body("evt_d", "pi_d"))
    store = processing_store(stack)
    assert store.commit(ProcessingCommit(webhook_id, 5.0))

    late = ProcessingCommit(webhook_id, 6.0, [PaymentWrite(succeeded("pi_d"), 0)])

    assert store.commit(late) is False
    assert stack.payment_items() == []
    webhook = store.get_webhook(webhook_id)
    assert webhook is not None
    assert webhook.processed_at == 5.0


def test_commit_raises_concurrency_error_when_the_payment_version_moved(
    stack: AwsStack, clock: FakeClock
) -> None:
    store = processing_store(stack)
    first = store_webhook(stack, clock, "evt_e1", stripe_body("evt_e1", "pi_e"))
    second = store_webhook(stack, clock, "evt_e2", stripe_body("evt_e2", "pi_e"))
    assert store.commit(ProcessingCommit(first, 5.0, [PaymentWrite(succeeded("pi_e"), 0)]))

    stale_new = ProcessingCommit(second, 6.0, [PaymentWrite(succeeded("pi_e", "evt_e2"), 0)])
    with pytest.raises(ConcurrencyError):
        store.commit(stale_new)
    stale_version = ProcessingCommit(second, 6.0, [PaymentWrite(succeeded("pi_e", "evt_e2"), 7)])
    with pytest.raises(ConcurrencyError):
        store.commit(stale_version)

    webhook = store.get_webhook(second)
    assert webhook is not None
    assert webhook.status is WebhookStatus.RECEIVED  # the whole transaction was canceled


class RacingStore(DynamoProcessingStore):
    """Reads a payment, then lets another processor commit to it before returning."""

    def __init__(self, stack: AwsStack, racer: Processor, racer_webhook: str) -> None:
        super().__init__(
            stack.clients.dynamodb,
            webhooks_table=stack.webhooks_table,
            payments_table=stack.payments_table,
        )
        self.racer, self.racer_webhook, self.reads = racer, racer_webhook, 0

    def get_payment(self, provider: str, payment_id: str) -> PaymentRecord | None:
        record = super().get_payment(provider, payment_id)
        self.reads += 1
        if self.reads == 1:
            assert self.racer.process(self.racer_webhook).outcome is Outcome.PROCESSED
        return record


def test_concurrent_update_of_a_payment_is_retried_and_both_events_count(
    stack: AwsStack, clock: FakeClock
) -> None:
    ours = store_webhook(
        stack, clock, "evt_r1", stripe_body("evt_r1", "pi_r", "payment_intent.processing")
    )
    theirs = store_webhook(stack, clock, "evt_r2", stripe_body("evt_r2", "pi_r"))
    racer = Processor(providers(clock), processing_store(stack), clock)
    racing = RacingStore(stack, racer, theirs)

    result = Processor(providers(clock), racing, clock).process(ours)

    assert result.outcome is Outcome.PROCESSED
    assert racing.reads == 2  # read, lost the race, read again
    payment = processing_store(stack).get_payment("stripe", "pi_r")
    assert payment is not None
    assert payment.version == 2
    assert {e.event_id for e in payment.events} == {"evt_r1", "evt_r2"}
    assert payment.status == "succeeded"


def test_lost_race_surfaces_as_concurrency_error_when_retries_run_out(
    stack: AwsStack, clock: FakeClock
) -> None:
    ours = store_webhook(stack, clock, "evt_s1", stripe_body("evt_s1", "pi_s"))
    theirs = store_webhook(stack, clock, "evt_s2", stripe_body("evt_s2", "pi_s"))
    racer = Processor(providers(clock), processing_store(stack), clock)
    racing = RacingStore(stack, racer, theirs)

    with pytest.raises(ConcurrencyError):
        Processor(providers(clock), racing, clock, max_conflict_retries=0).process(ours)


def test_failure_note_counts_attempts_and_keeps_the_reason(
    stack: AwsStack, clock: FakeClock
) -> None:
    webhook_id = store_webhook(stack, clock, "evt_f", stripe_body("evt_f", "pi_f"))
    store = processing_store(stack)
    store.record_failure(webhook_id, "PayloadError: " + "x" * 1000)
    store.record_failure(webhook_id, "ConcurrencyError: moved")
    store.record_failure("wh_gone", "ignored: the webhook expired")

    webhook = store.get_webhook(webhook_id)
    assert webhook is not None
    assert (webhook.attempts, webhook.error) == (2, "ConcurrencyError: moved")
    assert stack.webhook_item("wh_gone") is None


def test_missing_payments_table_is_storage_unavailable(stack: AwsStack, clock: FakeClock) -> None:
    webhook_id = store_webhook(stack, clock, "evt_g", stripe_body("evt_g", "pi_g"))
    stack.clients.dynamodb.delete_table(TableName=stack.payments_table)
    store = processing_store(stack)
    with pytest.raises(StorageUnavailableError):
        store.get_payment("stripe", "pi_g")
    with pytest.raises(StorageUnavailableError):
        store.commit(ProcessingCommit(webhook_id, 5.0, [PaymentWrite(succeeded("pi_g"), 0)]))
