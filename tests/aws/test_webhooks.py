"""DynamoWebhookStore: each event stored once, scheduled once, and large bodies still fit."""

from __future__ import annotations

import base64
import json
import os

import pytest

from payhook.backends.aws.payments import DynamoProcessingStore
from payhook.backends.aws.webhooks import DynamoWebhookStore
from payhook.core.model import Stored, StoredWebhook, body_digest, webhook_id_for
from payhook.errors import PayloadError
from payhook.runtimes.aws_lambda.receiver import Receiver
from tests.aws.emulator import AwsStack, stripe_delivery
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def webhook_store(stack: AwsStack, clock: FakeClock) -> DynamoWebhookStore:
    return DynamoWebhookStore(
        stack.clients.dynamodb,
        stack.clients.sqs,
        table=stack.webhooks_table,
        queue_url=stack.queue_url,
        retention_seconds=86_400,
        clock=clock,
    )


def webhook(event_id: str, payload: bytes = b'{"id": "x"}') -> StoredWebhook:
    return StoredWebhook(
        webhook_id=webhook_id_for("stripe", event_id),
        provider="stripe",
        provider_type="stripe",
        event_id=event_id,
        event_type="charge.succeeded",
        payload=payload,
        received_at=1_700_000_000.25,
    )


def test_batch_repeating_an_event_stores_and_enqueues_it_once(
    stack: AwsStack, clock: FakeClock
) -> None:
    store = webhook_store(stack, clock)
    duplicates = store.store([webhook("evt_1"), webhook("evt_2"), webhook("evt_1")])
    assert duplicates == [Stored.NEW, Stored.NEW, Stored.DUPLICATE]
    enqueued = sorted(json.loads(m["Body"])["webhookId"] for m in stack.receive(stack.queue_url))
    assert enqueued == sorted(webhook_id_for("stripe", e) for e in ("evt_1", "evt_2"))


def test_more_than_one_sqs_batch_of_events_is_enqueued_whole(
    stack: AwsStack, clock: FakeClock
) -> None:
    assert (
        webhook_store(stack, clock).store([webhook(f"evt_{n}") for n in range(23)])
        == [Stored.NEW] * 23
    )
    assert stack.queue_depth(stack.queue_url) == 23


def test_large_payload_is_stored_compressed_and_reads_back_exactly(
    stack: AwsStack, clock: FakeClock
) -> None:
    payload = json.dumps({"id": "evt_big", "lines": [{"sku": n} for n in range(60_000)]}).encode()
    assert len(payload) > 400 * 1024  # more than a DynamoDB item can hold as is
    webhook_store(stack, clock).store([webhook("evt_big", payload)])

    item = stack.webhook_item(webhook_id_for("stripe", "evt_big"))
    assert item is not None
    assert item["payloadEncoding"]["S"] == "zlib"
    processing = DynamoProcessingStore(
        stack.clients.dynamodb,
        webhooks_table=stack.webhooks_table,
        payments_table=stack.payments_table,
    )
    stored = processing.get_webhook(webhook_id_for("stripe", "evt_big"))
    assert stored is not None
    assert stored.payload == payload


def test_payload_too_large_even_compressed_stores_nothing_of_its_batch(
    stack: AwsStack, clock: FakeClock
) -> None:
    noise = os.urandom(450 * 1024)
    with pytest.raises(PayloadError, match="does not fit a DynamoDB item"):
        webhook_store(stack, clock).store([webhook("evt_small"), webhook("evt_noise", noise)])
    assert stack.webhook_item(webhook_id_for("stripe", "evt_small")) is None
    assert stack.queue_depth(stack.queue_url) == 0


def test_receiver_answers_413_for_an_authentic_body_too_large_to_store(
    stack: AwsStack, clock: FakeClock
) -> None:
    padding = base64.b64encode(os.urandom(600 * 1024)).decode()
    body = json.dumps({"id": "evt_huge", "type": "charge.succeeded", "pad": padding}).encode()
    receiver = Receiver.from_environment(stack.env, stack.clients, clock)
    answer = receiver.handle(stripe_delivery(body, int(clock.now)))
    assert answer["statusCode"] == 413
    assert json.loads(answer["body"])["error"] == "body_too_large"
    assert stack.queue_depth(stack.queue_url) == 0


def unsigned(event_id: str, payload: bytes) -> StoredWebhook:
    """A Shopify-like delivery: its id is not signed, so its identity is the body's digest."""
    return StoredWebhook(
        webhook_id=webhook_id_for("shop", body_digest(payload)),
        provider="shop",
        provider_type="shopify",
        event_id=event_id,
        event_type="orders/paid",
        payload=payload,
        received_at=1_700_000_000.25,
        id_signed=False,
    )


def test_an_unsigned_id_borrowed_by_other_bytes_is_stored_and_flagged_a_conflict(
    stack: AwsStack, clock: FakeClock
) -> None:
    store = webhook_store(stack, clock)
    assert store.store([unsigned("X2", b'{"id":1}')]) == [Stored.NEW]
    assert store.store([unsigned("X9", b'{"id":1}')]) == [Stored.DUPLICATE]  # a replay
    assert store.store([unsigned("X2", b'{"id":2}')]) == [Stored.CONFLICT]
    genuine = DynamoProcessingStore(
        stack.clients.dynamodb,
        webhooks_table=stack.webhooks_table,
        payments_table=stack.payments_table,
    ).get_webhook(webhook_id_for("shop", body_digest(b'{"id":2}')))
    assert genuine is not None
    assert (genuine.conflict, genuine.id_signed, genuine.event_id) == (True, False, "X2")
    # Both are processed (a duplicate of a webhook still received is queued again, safely).
    queued = {json.loads(m["Body"])["webhookId"] for m in stack.receive(stack.queue_url)}
    assert queued == {genuine.webhook_id, webhook_id_for("shop", body_digest(b'{"id":1}'))}
