"""Steps the recovery tests share: deliver through the receiver, process until a webhook dies."""

from __future__ import annotations

import json
from typing import Any

from payhook.runtimes.aws_lambda.processor import SqsProcessor
from payhook.runtimes.aws_lambda.receiver import Receiver
from tests.aws.emulator import MAX_RECEIVE_COUNT, STRIPE_SECRET, AwsStack, stripe_delivery
from tests.conftest import FakeClock

#: Past the functions' provider cache (PAYHOOK_SECRET_CACHE_SECONDS, 300 s by default).
SECRET_CACHE_EXPIRY = 301


def deliver(stack: AwsStack, clock: FakeClock, body: bytes) -> None:
    receiver = Receiver.from_environment(stack.env, stack.clients, clock)
    answer = receiver.handle(stripe_delivery(body, int(clock.now)))
    assert answer["statusCode"] == 200, answer


def make_processor(stack: AwsStack, clock: FakeClock) -> SqsProcessor:
    return SqsProcessor.from_environment(stack.env, stack.clients, clock)


def set_providers(stack: AwsStack, providers: dict[str, Any]) -> None:
    """Load a new provider secret, as an operator does with put-secret-value."""
    stack.clients.secretsmanager.put_secret_value(
        SecretId=stack.env["PAYHOOK_PROVIDERS_SECRET_ARN"],
        SecretString=json.dumps({"providers": providers}),
    )


STRIPE_ONLY = {"stripe": {"secrets": [STRIPE_SECRET], "tolerance_seconds": 300}}
#: The cause of the poison: Stripe's section renamed, so stored Stripe webhooks name no
#: configured provider and fail processing every time.
STRIPE_RENAMED = {"stripe-eu": {"type": "stripe", "secrets": [STRIPE_SECRET]}}


def process_until_dead_lettered(stack: AwsStack, processor: SqsProcessor) -> list[str]:
    """Poll as the event source mapping does until SQS moves the failing messages to the
    dead-letter queue; returns the ids of the messages that failed."""
    failed: set[str] = set()
    for _ in range(MAX_RECEIVE_COUNT):
        polled = stack.poll_processor(processor.handle)
        failed |= {f["itemIdentifier"] for f in polled["batchItemFailures"]}
    # SQS moves a message on the receive after its maxReceiveCount.
    assert stack.poll_processor(processor.handle)["received"] == 0
    return sorted(failed)


def webhook_status(stack: AwsStack, webhook_id: str) -> str | None:
    item = stack.webhook_item(webhook_id)
    return str(item["status"]["S"]) if item else None
