"""The processor Lambda on SQS batches: partial failures, dead letters, exactly-once effects."""

from __future__ import annotations

import json

import pytest

from payhook.core.model import webhook_id_for
from payhook.errors import StorageUnavailableError
from payhook.runtimes.aws_lambda.processor import SqsProcessor
from payhook.runtimes.aws_lambda.receiver import Receiver
from tests.aws.emulator import (
    MAX_RECEIVE_COUNT,
    AwsStack,
    load_event,
    stripe_body,
    stripe_delivery,
)
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def deliver(stack: AwsStack, clock: FakeClock, body: bytes) -> None:
    receiver = Receiver.from_environment(stack.env, stack.clients, clock)
    assert receiver.handle(stripe_delivery(body, int(clock.now)))["statusCode"] == 200


def make_processor(stack: AwsStack, clock: FakeClock) -> SqsProcessor:
    return SqsProcessor.from_environment(stack.env, stack.clients, clock)


def poison_body(event_id: str) -> bytes:
    """Authentic and stored, but Stripe's event has no data.object: never processable."""
    return json.dumps({"id": event_id, "type": "payment_intent.succeeded", "data": {}}).encode()


def test_recorded_batch_for_webhooks_not_stored_is_acknowledged(
    stack: AwsStack, clock: FakeClock
) -> None:
    # Expired (TTL) or never stored: there is nothing to do, so the messages are not retried.
    result = make_processor(stack, clock).handle(load_event("sqs_processing_batch.json"))
    assert result == {"batchItemFailures": []}
    assert stack.payment_items() == []


def test_poison_message_is_the_only_failure_and_lands_in_the_dead_letter_queue(
    stack: AwsStack, clock: FakeClock
) -> None:
    deliver(stack, clock, stripe_body("evt_good_1", "pi_good_1"))
    deliver(stack, clock, poison_body("evt_poison"))
    deliver(stack, clock, stripe_body("evt_good_2", "pi_good_2"))
    poison_id = webhook_id_for("stripe", "evt_poison")
    processor = make_processor(stack, clock)

    first = stack.poll_processor(processor.handle)

    assert first["received"] == 3
    [failure] = first["batchItemFailures"]
    assert stack.queue_depth(stack.dlq_url) == 0
    assert {p["paymentId"]["S"] for p in stack.payment_items()} == {"pi_good_1", "pi_good_2"}
    assert stack.webhook_item(poison_id)["status"]["S"] == "received"  # type: ignore[index]

    for _ in range(MAX_RECEIVE_COUNT - 1):
        again = stack.poll_processor(processor.handle)
        assert [f["itemIdentifier"] for f in again["batchItemFailures"]] == [
            failure["itemIdentifier"]
        ]
    # SQS redrive moves it on the receive after maxReceiveCount.
    assert stack.poll_processor(processor.handle)["received"] == 0
    assert stack.queue_depth(stack.queue_url) == 0
    [dead] = stack.receive(stack.dlq_url)
    assert dead["MessageId"] == failure["itemIdentifier"]
    assert json.loads(dead["Body"]) == {"webhookId": poison_id}
    item = stack.webhook_item(poison_id)
    assert item is not None
    assert item["status"]["S"] == "dead"  # marked on the last attempt SQS allows
    assert int(item["attempts"]["N"]) == MAX_RECEIVE_COUNT
    assert item["error"]["S"].startswith("PayloadError: Stripe event has no data.object")
    assert "payload" not in item["error"]["S"]


def test_message_without_a_webhook_id_fails_alone(stack: AwsStack, clock: FakeClock) -> None:
    deliver(stack, clock, stripe_body("evt_ok", "pi_ok"))
    stack.clients.sqs.send_message(QueueUrl=stack.queue_url, MessageBody='{"id": 1}')
    result = stack.poll_processor(make_processor(stack, clock).handle)
    assert result["received"] == 2
    assert len(result["batchItemFailures"]) == 1
    assert [p["paymentId"]["S"] for p in stack.payment_items()] == ["pi_ok"]


def test_duplicate_messages_of_one_webhook_have_one_ledger_effect(
    stack: AwsStack, clock: FakeClock
) -> None:
    body = stripe_body("evt_twice", "pi_twice")
    deliver(stack, clock, body)
    deliver(stack, clock, body)  # still received: enqueued again
    assert stack.queue_depth(stack.queue_url) == 2

    result = stack.poll_processor(make_processor(stack, clock).handle)

    assert result == {"batchItemFailures": [], "received": 2}
    [payment] = stack.payment_items()
    assert payment["version"]["N"] == "1"
    assert len(json.loads(payment["publishedEvents"]["S"])) == 1
    item = stack.webhook_item(webhook_id_for("stripe", "evt_twice"))
    assert item is not None
    assert item["status"]["S"] == "processed"
    assert item["attempts"]["N"] == "1"


def test_later_event_of_a_payment_moves_its_version_and_publishes_the_change(
    stack: AwsStack, clock: FakeClock
) -> None:
    processor = make_processor(stack, clock)
    deliver(stack, clock, stripe_body("evt_v1", "pi_v", "payment_intent.processing", 1500))
    stack.poll_processor(processor.handle)
    deliver(stack, clock, stripe_body("evt_v2", "pi_v", "payment_intent.succeeded", 1500))
    stack.poll_processor(processor.handle)

    [payment] = stack.payment_items()
    assert payment["version"]["N"] == "2"
    assert payment["status"]["S"] == "succeeded"
    [event] = json.loads(payment["publishedEvents"]["S"])
    assert (event["previousStatus"], event["status"]) == ("pending", "succeeded")
    record = json.loads(payment["record"]["S"])
    assert record["version"] == 2
    assert len(record["events"]) == 2


def test_batch_fails_whole_when_providers_cannot_be_read(stack: AwsStack, clock: FakeClock) -> None:
    stack.client("secretsmanager").delete_secret(
        SecretId=stack.env["PAYHOOK_PROVIDERS_SECRET_ARN"], ForceDeleteWithoutRecovery=True
    )
    with pytest.raises(StorageUnavailableError):
        make_processor(stack, clock).handle(load_event("sqs_processing_batch.json"))
