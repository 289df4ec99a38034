"""Redrive on moto: a dead webhook, once its cause is fixed, is processed exactly once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from payhook.backends.aws.redrive import RedriveReport, redrive_dead_letters, redrive_webhooks
from payhook.backends.aws.sweep import WebhookSweeper
from payhook.core.model import webhook_id_for
from payhook.errors import StorageUnavailableError
from payhook.runtimes.aws_lambda.receiver import Receiver
from tests.aws.emulator import AwsStack, stripe_body, stripe_delivery
from tests.aws.flows import (
    SECRET_CACHE_EXPIRY,
    STRIPE_ONLY,
    STRIPE_RENAMED,
    deliver,
    make_processor,
    process_until_dead_lettered,
    set_providers,
    webhook_status,
)
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def redrive_all(stack: AwsStack, clock: FakeClock, **names: str) -> RedriveReport:
    return redrive_dead_letters(
        stack.clients.dynamodb,
        stack.clients.sqs,
        webhooks_table=stack.webhooks_table,
        queue_url=names.get("queue_url", stack.queue_url),
        dead_letter_queue_url=stack.dlq_url,
        clock=clock,
    )


def redrive_ids(stack: AwsStack, clock: FakeClock, *webhook_ids: str) -> RedriveReport:
    return redrive_webhooks(
        stack.clients.dynamodb,
        stack.clients.sqs,
        webhooks_table=stack.webhooks_table,
        queue_url=stack.queue_url,
        webhook_ids=list(webhook_ids),
        clock=clock,
    )


def dead_webhook(stack: AwsStack, clock: FakeClock, event_id: str, payment_id: str) -> str:
    """A Stripe webhook stored, then failed until dead (its provider section renamed); the
    provider section is back when this returns: the cause is fixed."""
    deliver(stack, clock, stripe_body(event_id, payment_id, amount=2500))
    set_providers(stack, STRIPE_RENAMED)
    clock.advance(SECRET_CACHE_EXPIRY)
    process_until_dead_lettered(stack, make_processor(stack, clock))
    set_providers(stack, STRIPE_ONLY)
    clock.advance(SECRET_CACHE_EXPIRY)
    return webhook_id_for("stripe", event_id)


def payments(stack: AwsStack) -> list[tuple[str, str, str, str]]:
    return [
        (p["paymentId"]["S"], p["status"]["S"], p["amount"]["N"], p["version"]["N"])
        for p in stack.payment_items()
    ]


def test_poison_then_dead_letter_then_fix_then_redrive_processes_the_webhook_once(
    stack: AwsStack, clock: FakeClock
) -> None:
    webhook_id = dead_webhook(stack, clock, "evt_redrive_1", "pi_redrive_1")
    item = stack.webhook_item(webhook_id)
    assert item is not None
    assert item["status"]["S"] == "dead"
    assert "no longer configured" in item["error"]["S"]
    assert stack.queue_depth(stack.dlq_url) == 1
    assert stack.queue_depth(stack.queue_url) == 0
    assert stack.payment_items() == []

    report = redrive_all(stack, clock)

    assert report == RedriveReport(redriven=(webhook_id,))
    assert stack.queue_depth(stack.dlq_url) == 0
    item = stack.webhook_item(webhook_id)
    assert item is not None
    assert (item["status"]["S"], item["attempts"]["N"]) == ("received", "0")
    assert "error" not in item
    assert float(item["redrivenAt"]["N"]) == clock.now

    polled = stack.poll_processor(make_processor(stack, clock).handle)

    assert polled == {"batchItemFailures": [], "received": 1}
    assert webhook_status(stack, webhook_id) == "processed"
    assert payments(stack) == [("pi_redrive_1", "succeeded", "2500", "1")]
    assert stack.queue_depth(stack.queue_url) == 0
    assert stack.queue_depth(stack.dlq_url) == 0
    # The stream (what the audit function chains) shows each step of the recovery.
    statuses = [
        r["dynamodb"]["NewImage"]["status"]["S"]
        for r in stack.stream_records(stack.webhooks_table)
        if r["eventName"] in ("INSERT", "MODIFY")
    ]
    transitions = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert transitions == ["received", "dead", "received", "processed"]


def test_a_second_redrive_and_a_stray_message_change_nothing(
    stack: AwsStack, clock: FakeClock
) -> None:
    webhook_id = dead_webhook(stack, clock, "evt_redrive_2", "pi_redrive_2")
    assert redrive_all(stack, clock).redriven == (webhook_id,)
    stack.poll_processor(make_processor(stack, clock).handle)
    before = payments(stack)

    assert redrive_all(stack, clock) == RedriveReport()
    assert redrive_ids(stack, clock, webhook_id) == RedriveReport(skipped={webhook_id: "processed"})
    stack.clients.sqs.send_message(
        QueueUrl=stack.queue_url, MessageBody=json.dumps({"webhookId": webhook_id})
    )
    assert stack.poll_processor(make_processor(stack, clock).handle)["batchItemFailures"] == []
    assert payments(stack) == before == [("pi_redrive_2", "succeeded", "2500", "1")]


def test_redrive_by_id_brings_back_a_dead_webhook_whose_dead_letter_is_gone(
    stack: AwsStack, clock: FakeClock
) -> None:
    webhook_id = dead_webhook(stack, clock, "evt_redrive_3", "pi_redrive_3")
    stack.clients.sqs.purge_queue(QueueUrl=stack.dlq_url)  # as if 14 days had passed
    assert stack.queue_depth(stack.dlq_url) == 0

    report = redrive_ids(stack, clock, webhook_id, "wh_unknown")

    assert report == RedriveReport(redriven=(webhook_id,), skipped={"wh_unknown": "missing"})
    stack.poll_processor(make_processor(stack, clock).handle)
    assert webhook_status(stack, webhook_id) == "processed"
    assert payments(stack) == [("pi_redrive_3", "succeeded", "2500", "1")]


def test_two_redrives_of_one_webhook_queue_it_once(stack: AwsStack, clock: FakeClock) -> None:
    webhook_id = dead_webhook(stack, clock, "evt_redrive_4", "pi_redrive_4")

    first = redrive_ids(stack, clock, webhook_id, webhook_id)
    second = redrive_ids(stack, clock, webhook_id)

    assert first == RedriveReport(redriven=(webhook_id,))
    assert second == RedriveReport(skipped={webhook_id: "received"})
    assert stack.queue_depth(stack.queue_url) == 1


def test_dead_letters_of_received_missing_and_unreadable_webhooks(
    stack: AwsStack, clock: FakeClock
) -> None:
    # A webhook whose processor died on its last attempt (never marked dead): it is received,
    # its only message is a dead letter, so it is queued again.
    deliver(stack, clock, stripe_body("evt_stuck", "pi_stuck"))
    stuck = webhook_id_for("stripe", "evt_stuck")
    [message] = stack.receive(stack.queue_url)
    stack.clients.sqs.delete_message(
        QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"]
    )
    for body in (json.dumps({"webhookId": stuck}), '{"webhookId": "wh_expired"}', "not json"):
        stack.clients.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=body)

    report = redrive_all(stack, clock)

    assert report == RedriveReport(
        requeued=(stuck,), skipped={"wh_expired": "missing"}, unreadable=1
    )
    assert stack.queue_depth(stack.dlq_url) == 1  # only the unreadable one is left
    stack.poll_processor(make_processor(stack, clock).handle)
    assert webhook_status(stack, stuck) == "processed"


def test_a_redrive_cut_off_after_the_reset_loses_nothing(stack: AwsStack, clock: FakeClock) -> None:
    webhook_id = dead_webhook(stack, clock, "evt_redrive_5", "pi_redrive_5")
    gone = stack.queue_url.rsplit("/", 1)[0] + "/payhook-no-such-queue"

    with pytest.raises(StorageUnavailableError):
        redrive_all(stack, clock, queue_url=gone)

    # Reset but never sent: received without a message, which is what the sweeper finds.
    assert webhook_status(stack, webhook_id) == "received"
    assert stack.queue_depth(stack.queue_url) == 0
    clock.advance(601)
    swept = WebhookSweeper(
        stack.clients.dynamodb,
        stack.clients.sqs,
        table=stack.webhooks_table,
        queue_url=stack.queue_url,
        after_seconds=600,
        limit=100,
        clock=clock,
    ).sweep()
    assert swept.requeued == (webhook_id,)
    stack.poll_processor(make_processor(stack, clock).handle)
    assert payments(stack) == [("pi_redrive_5", "succeeded", "2500", "1")]


def test_a_provider_retry_of_a_dead_webhook_is_acknowledged_and_waits_for_the_redrive(
    stack: AwsStack, clock: FakeClock
) -> None:
    # Queueing it on every retry would only fail it again: the redrive is the way back.
    webhook_id = dead_webhook(stack, clock, "evt_redrive_6", "pi_redrive_6")
    receiver = Receiver.from_environment(stack.env, stack.clients, clock)

    answer: dict[str, Any] = receiver.handle(
        stripe_delivery(stripe_body("evt_redrive_6", "pi_redrive_6", amount=2500), int(clock.now))
    )

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["duplicate"] is True
    assert webhook_status(stack, webhook_id) == "dead"
    assert stack.queue_depth(stack.queue_url) == 0
