"""The audit Lambda: stream batches -> chain and EventBridge, idempotent under retries."""

from __future__ import annotations

from typing import Any

import pytest

from payhook.backends.aws.audit import DynamoAuditLog
from payhook.backends.aws.events import EventPublisher
from payhook.core.audit import AuditEntry, Change
from payhook.errors import ConcurrencyError, StorageUnavailableError
from payhook.runtimes.aws_lambda.audit import StreamAuditor
from payhook.runtimes.aws_lambda.processor import SqsProcessor
from payhook.runtimes.aws_lambda.receiver import Receiver
from payhook.service.audit import record_changes, verify_log
from tests.aws.emulator import AwsStack, load_event, stripe_body, stripe_delivery
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def auditor(stack: AwsStack, clock: FakeClock, **env: str) -> StreamAuditor:
    return StreamAuditor.from_environment({**stack.env, **env}, stack.clients, clock)


def audit_log(stack: AwsStack) -> DynamoAuditLog:
    return DynamoAuditLog(stack.clients.dynamodb, table=stack.audit_table)


def run_pipeline(stack: AwsStack, clock: FakeClock, *bodies: bytes) -> list[dict[str, Any]]:
    """Receive and process ``bodies``; return the stream records both tables produced."""
    receiver = Receiver.from_environment(stack.env, stack.clients, clock)
    for body in bodies:
        assert receiver.handle(stripe_delivery(body, int(clock.now)))["statusCode"] == 200
    processor = SqsProcessor.from_environment(stack.env, stack.clients, clock)
    assert stack.poll_processor(processor.handle)["batchItemFailures"] == []
    return stack.stream_records(stack.webhooks_table) + stack.stream_records(stack.payments_table)


def test_same_stream_batch_delivered_twice_is_chained_and_published_once(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(
        stack, clock, stripe_body("evt_a", "pi_a"), stripe_body("evt_b", "pi_b", amount=250)
    )
    handler = auditor(stack, clock)

    handler.handle({"Records": records})
    once = list(audit_log(stack).entries())
    handler.handle({"Records": records})

    assert list(audit_log(stack).entries()) == once
    assert len(once) == 6  # per webhook: insert, processed; per payment: insert
    assert verify_log(audit_log(stack)).ok
    published = stack.published_events()
    assert sorted(e["detail"]["paymentId"] for e in published) == ["pi_a", "pi_b"]
    assert {e["detail"]["payment"]["amount"] for e in published} == {4999, 250}


def test_batch_split_by_a_retry_chains_each_record_once(stack: AwsStack, clock: FakeClock) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_c", "pi_c"))
    handler = auditor(stack, clock)
    handler.handle({"Records": records[:2]})
    handler.handle({"Records": records})  # bisected retry overlapping the first half
    entries = list(audit_log(stack).entries())
    assert [(e.entity, e.action) for e in entries] == [
        ("webhook", "insert"),
        ("webhook", "modify"),
        ("payment", "insert"),
    ]
    assert len(stack.published_events()) == 1


def test_recorded_stream_batches_are_chained_with_ttl_removal_marked(
    stack: AwsStack, clock: FakeClock
) -> None:
    handler = auditor(stack, clock)
    handler.handle(load_event("dynamodb_stream_webhooks.json"))
    handler.handle(load_event("dynamodb_stream_payments.json"))
    entries = list(audit_log(stack).entries())
    assert [(e.entity, e.action) for e in entries] == [
        ("webhook", "insert"),
        ("webhook", "modify"),
        ("webhook", "remove"),
        ("payment", "insert"),
        ("payment", "modify"),
    ]
    assert entries[2].data["expired"] is True
    assert entries[0].recorded_at.startswith("2023-11-14T22:13:20")
    assert [e["detail"]["status"] for e in stack.published_events()] == [
        "succeeded",
        "partially_refunded",
    ]


def test_large_batch_is_chained_in_several_transactions(stack: AwsStack, clock: FakeClock) -> None:
    for n in range(60):
        stack.clients.dynamodb.put_item(
            TableName=stack.webhooks_table,
            Item={
                "webhookId": {"S": f"wh_{n:03d}"},
                "provider": {"S": "stripe"},
                "eventId": {"S": f"evt_{n}"},
                "eventType": {"S": "charge.succeeded"},
                "status": {"S": "received"},
            },
        )
    auditor(stack, clock).handle({"Records": stack.stream_records(stack.webhooks_table)})
    log = audit_log(stack)
    assert [e.entity_key for e in log.entries()] == [f"wh_{n:03d}" for n in range(60)]
    assert verify_log(log).ok


def test_unavailable_audit_table_raises_so_the_stream_retries(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_d", "pi_d"))
    stack.clients.dynamodb.delete_table(TableName=stack.audit_table)
    with pytest.raises(StorageUnavailableError):
        auditor(stack, clock).handle({"Records": records})


def test_failed_publish_raises_before_chaining_and_the_retry_does_both(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_e", "pi_e"))
    broken = auditor(stack, clock, PAYHOOK_EVENT_BUS_NAME="payhook-no-such-bus")

    with pytest.raises(StorageUnavailableError):
        broken.handle({"Records": records})
    assert list(audit_log(stack).entries()) == []

    auditor(stack, clock).handle({"Records": records})
    assert len(list(audit_log(stack).entries())) == 3
    [event] = stack.published_events()
    assert event["detail"]["paymentId"] == "pi_e"


class MovingHeadLog(DynamoAuditLog):
    """Another writer appends right after each of the first ``races`` head reads."""

    def __init__(self, stack: AwsStack, clock: FakeClock, races: int) -> None:
        super().__init__(stack.clients.dynamodb, table=stack.audit_table)
        self.other = DynamoAuditLog(stack.clients.dynamodb, table=stack.audit_table)
        self.clock, self.races, self.reads = clock, races, 0

    def head(self) -> AuditEntry | None:
        head = super().head()
        self.reads += 1
        if self.reads <= self.races:
            other = Change("webhook", f"wh_other_{self.reads}", "insert", {}, f"x:{self.reads}")
            record_changes(self.other, [other], self.clock)
        return head


def test_moved_head_is_retried_onto_the_new_head(stack: AwsStack, clock: FakeClock) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_f", "pi_f"))
    log = MovingHeadLog(stack, clock, races=2)
    publisher = EventPublisher(stack.clients.events, bus_name=stack.env["PAYHOOK_EVENT_BUS_NAME"])
    sleeps: list[float] = []

    StreamAuditor(log, publisher, clock, sleep=sleeps.append).handle({"Records": records})

    entries = list(audit_log(stack).entries())
    assert [e.entity_key for e in entries[:2]] == ["wh_other_1", "wh_other_2"]
    assert len(entries) == 5
    assert verify_log(audit_log(stack)).ok
    assert len(sleeps) == 2


def test_head_that_keeps_moving_gives_up_with_concurrency_error(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_g", "pi_g"))
    log = MovingHeadLog(stack, clock, races=100)
    publisher = EventPublisher(stack.clients.events, bus_name=stack.env["PAYHOOK_EVENT_BUS_NAME"])
    auditor_ = StreamAuditor(log, publisher, clock, max_conflict_retries=2, sleep=lambda _: None)
    with pytest.raises(ConcurrencyError):
        auditor_.handle({"Records": records})
    assert log.reads == 3
