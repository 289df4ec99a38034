"""The sweeper on moto: webhooks stranded in ``received`` are re-queued once, processed once."""

from __future__ import annotations

import json

import pytest

from payhook.backends.aws.status_index import shard_of
from payhook.backends.aws.sweep import WebhookSweeper
from payhook.core.model import webhook_id_for
from payhook.errors import ConfigError
from payhook.runtimes.aws_lambda import sweeper as sweeper_lambda
from payhook.runtimes.aws_lambda.receiver import Receiver
from payhook.runtimes.aws_lambda.sweeper import sweeper_from_environment
from tests.aws.emulator import AwsStack, stripe_body, stripe_delivery
from tests.aws.flows import (
    SECRET_CACHE_EXPIRY,
    STRIPE_RENAMED,
    deliver,
    make_processor,
    set_providers,
    webhook_status,
)
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws

BOUND = 600  # the default PAYHOOK_SWEEP_AFTER_SECONDS


def deliver_with_lost_send(stack: AwsStack, clock: FakeClock, event_id: str) -> str:
    """Stored, then SendMessage fails (the Lambda died in between): the provider got a 503,
    and this provider never retries."""
    gone = stack.queue_url.rsplit("/", 1)[0] + "/payhook-no-such-queue"
    receiver = Receiver.from_environment(
        {**stack.env, "PAYHOOK_QUEUE_URL": gone}, stack.clients, clock
    )
    event = stripe_delivery(stripe_body(event_id, f"pi_{event_id}"), int(clock.now))
    assert receiver.handle(event)["statusCode"] == 503
    return webhook_id_for("stripe", event_id)


def make_sweeper(stack: AwsStack, clock: FakeClock, limit: int = 1000) -> WebhookSweeper:
    env = {**stack.env, "PAYHOOK_SWEEP_LIMIT": str(limit)}
    return sweeper_from_environment(env, stack.clients, clock)


def test_a_webhook_whose_send_was_lost_is_requeued_by_the_sweeper_and_processed_once(
    stack: AwsStack, clock: FakeClock
) -> None:
    webhook_id = deliver_with_lost_send(stack, clock, "evt_lost_1")
    assert webhook_status(stack, webhook_id) == "received"
    assert stack.queue_depth(stack.queue_url) == 0
    sweeper = make_sweeper(stack, clock)

    clock.advance(BOUND - 1)
    assert sweeper.sweep().requeued == ()  # not stranded yet: the provider may still retry
    clock.advance(2)
    swept = sweeper.sweep()

    assert swept.requeued == (webhook_id,)
    [message] = stack.receive(stack.queue_url)
    assert json.loads(message["Body"]) == {"webhookId": webhook_id}
    stack.clients.sqs.change_message_visibility(
        QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    assert stack.poll_processor(make_processor(stack, clock).handle)["batchItemFailures"] == []
    item = stack.webhook_item(webhook_id)
    assert item is not None
    assert (item["status"]["S"], item["attempts"]["N"], item["sweeps"]["N"]) == (
        "processed",
        "1",
        "1",
    )
    [payment] = stack.payment_items()
    assert (payment["paymentId"]["S"], payment["version"]["N"]) == ("pi_evt_lost_1", "1")
    clock.advance(BOUND + 1)
    assert sweeper.sweep().found == 0  # processed: no longer in the received index


def test_a_second_sweep_within_the_bound_queues_nothing_again(
    stack: AwsStack, clock: FakeClock
) -> None:
    webhook_id = deliver_with_lost_send(stack, clock, "evt_lost_2")
    clock.advance(BOUND + 1)
    sweeper = make_sweeper(stack, clock)

    first, second = sweeper.sweep(), sweeper.sweep()

    assert first.requeued == (webhook_id,)
    assert (second.found, second.requeued) == (1, ())
    assert stack.queue_depth(stack.queue_url) == 1


def test_a_webhook_queued_twice_is_processed_once(stack: AwsStack, clock: FakeClock) -> None:
    # Queued by the receiver, then the processor stayed down past the bound: the sweeper
    # queues it again, and the second message finds it processed.
    deliver(stack, clock, stripe_body("evt_twice_swept", "pi_twice_swept"))
    clock.advance(BOUND + 1)

    assert len(make_sweeper(stack, clock).sweep().requeued) == 1
    assert stack.queue_depth(stack.queue_url) == 2
    polled = stack.poll_processor(make_processor(stack, clock).handle)

    assert polled == {"batchItemFailures": [], "received": 2}
    [payment] = stack.payment_items()
    assert payment["version"]["N"] == "1"
    assert len(json.loads(payment["publishedEvents"]["S"])) == 1


def test_a_webhook_attempted_within_the_bound_is_left_to_sqs(
    stack: AwsStack, clock: FakeClock
) -> None:
    # An attempt within the bound means SQS still holds its message and is retrying it.
    deliver(stack, clock, stripe_body("evt_retrying", "pi_retrying"))
    webhook_id = webhook_id_for("stripe", "evt_retrying")
    set_providers(stack, STRIPE_RENAMED)  # every attempt fails; none is the last one yet
    processor = make_processor(stack, clock)
    sweeper = make_sweeper(stack, clock)
    clock.advance(BOUND + 1)  # received (and queued) longer ago than the bound

    for _ in range(2):
        assert stack.poll_processor(processor.handle)["batchItemFailures"]
        assert sweeper.sweep().requeued == ()
        clock.advance(SECRET_CACHE_EXPIRY)
    clock.advance(BOUND)  # no attempt for longer than the bound

    assert sweeper.sweep().requeued == (webhook_id,)


def test_one_sweep_takes_at_most_its_limit_oldest_first(stack: AwsStack, clock: FakeClock) -> None:
    stranded = []
    for number in range(3):
        stranded.append(deliver_with_lost_send(stack, clock, f"evt_many_{number}"))
        clock.advance(1)
    clock.advance(BOUND)
    sweeper = make_sweeper(stack, clock, limit=2)

    first, second = sweeper.sweep(), sweeper.sweep()

    assert first.requeued == tuple(stranded[:2])
    assert second.requeued == (stranded[2],)
    assert stack.queue_depth(stack.queue_url) == 3


def test_a_sweep_reads_every_shard_of_the_index_oldest_first(
    stack: AwsStack, clock: FakeClock
) -> None:
    stranded = []
    for number in range(12):
        stranded.append(deliver_with_lost_send(stack, clock, f"evt_sharded_{number}"))
        clock.advance(1)
    assert len({shard_of(wid) for wid in stranded}) >= 4  # spread over several index keys
    clock.advance(BOUND)
    sweeper = make_sweeper(stack, clock, limit=5)

    first, second, third = sweeper.sweep(), sweeper.sweep(), sweeper.sweep()

    assert first.requeued + second.requeued + third.requeued == tuple(stranded)
    assert [len(s.requeued) for s in (first, second, third)] == [5, 5, 2]
    assert stack.queue_depth(stack.queue_url) == 12


def test_module_handler_sweeps_with_the_settings_of_its_environment(
    lambda_env: AwsStack, clock: FakeClock
) -> None:
    # Delivered at the fake clock's time, long before the handler's (real) now.
    webhook_id = deliver_with_lost_send(lambda_env, clock, "evt_handler")

    assert sweeper_lambda.handler({}, None) == {"found": 1, "requeued": 1}
    assert sweeper_lambda.sweeper() is sweeper_lambda.sweeper()
    assert sweeper_lambda.sweeper().after_seconds == BOUND
    assert webhook_status(lambda_env, webhook_id) == "received"
    assert lambda_env.queue_depth(lambda_env.queue_url) == 1


def test_settings_outside_their_range_fail_at_cold_start(stack: AwsStack) -> None:
    with pytest.raises(ConfigError, match=r"PAYHOOK_SWEEP_AFTER_SECONDS: got '30', expected"):
        sweeper_from_environment({**stack.env, "PAYHOOK_SWEEP_AFTER_SECONDS": "30"}, stack.clients)
