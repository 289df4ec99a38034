"""What one webhook costs, counted on moto through the whole pipeline.

Receiver -> processor -> audit function, each the deployed handler run in-process, with the
real Stripe sample (2.2 KB, as Stripe sends it: indented). Requests are counted per API and
DynamoDB capacity is computed from item sizes (``metering.py``: moto's ConsumedCapacity is a
constant). Two traffic shapes bound the cost:

- one at a time: every invocation handles one webhook (low traffic without batching
  windows): one processor batch per webhook, and four audit batches (the webhooks stream's
  insert with its ``enqueuedAt`` note, its ``processed`` change, the payments stream's insert,
  and 30 days later its TTL removal);
- ten at a time: the processor takes ten per batch, and each stream's batch holds ten
  webhooks' records (what the batching windows gather at a few webhooks per second).

docs/deploy.md ("What a million webhooks cost") is computed from EXPECTED: when a change
moves these counts, update both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from payhook.backends.aws.clients import default_clients
from payhook.providers.samples import sample
from payhook.runtimes.aws_lambda import audit, processor, receiver
from tests.aws.emulator import AwsStack, stripe_delivery
from tests.aws.metering import Meter

pytestmark = pytest.mark.aws

ESM_CALLS = {"ReceiveMessage", "DeleteMessageBatch"}  # the event source mapping's, per batch

# Per webhook. Requests: "hop service:Operation"; capacity: "hop WRU|RRU table[/index]".
EXPECTED: dict[str, dict[str, float]] = {
    "one_at_a_time": {
        "audit RRU audit": 8.0,
        "audit WRU audit": 24.0,
        "audit dynamodb:BatchGetItem": 4.0,
        "audit dynamodb:Query": 4.0,
        "audit dynamodb:TransactWriteItems": 4.0,
        "audit events:PutEvents": 1.0,
        "audit events:entries": 1.0,
        "audit kms:GenerateMac": 4.0,
        "processor RRU payments": 1.0,
        "processor RRU webhooks": 1.0,
        "processor WRU payments": 4.0,
        "processor WRU webhooks": 6.0,
        "processor WRU webhooks/byStatus": 2.0,
        "processor dynamodb:GetItem": 2.0,
        "processor dynamodb:TransactWriteItems": 1.0,
        "receiver WRU webhooks": 6.0,
        "receiver WRU webhooks/byStatus": 1.0,
        "receiver dynamodb:PutItem": 1.0,
        "receiver dynamodb:UpdateItem": 1.0,
        "receiver sqs:SendMessageBatch": 1.0,
        "sqs-poller sqs:DeleteMessageBatch": 1.0,
        "sqs-poller sqs:ReceiveMessage": 1.0,
    },
    "ten_at_a_time": {
        "audit RRU audit": 4.3,
        "audit WRU audit": 16.6,
        "audit dynamodb:BatchGetItem": 0.3,
        "audit dynamodb:Query": 0.3,
        "audit dynamodb:TransactWriteItems": 0.3,
        "audit events:PutEvents": 0.1,
        "audit events:entries": 1.0,
        "audit kms:GenerateMac": 0.3,
        "processor RRU payments": 1.0,
        "processor RRU webhooks": 1.0,
        "processor WRU payments": 4.0,
        "processor WRU webhooks": 6.0,
        "processor WRU webhooks/byStatus": 2.0,
        "processor dynamodb:GetItem": 2.0,
        "processor dynamodb:TransactWriteItems": 1.0,
        "receiver WRU webhooks": 6.0,
        "receiver WRU webhooks/byStatus": 1.0,
        "receiver dynamodb:PutItem": 1.0,
        "receiver dynamodb:UpdateItem": 1.0,
        "receiver sqs:SendMessageBatch": 1.0,
        "sqs-poller sqs:DeleteMessageBatch": 0.1,
        "sqs-poller sqs:ReceiveMessage": 0.1,
    },
}


def stripe_payload() -> bytes:
    body = sample("stripe", "payment_intent.succeeded", now=time.time())
    return (json.dumps(body, indent=2) + "\n").encode()


class Pipeline:
    def __init__(self, stack: AwsStack, meter: Meter) -> None:
        self.stack, self.meter = stack, meter

    def receive(self, count: int) -> list[str]:
        ids = []
        with self.meter.hop("receiver"):
            for _ in range(count):
                event = stripe_delivery(stripe_payload(), int(time.time()))
                answer = receiver.handler(event, None)
                assert answer["statusCode"] == 200, answer
                ids.append(json.loads(answer["body"])["webhookId"])
        return ids

    def process(self) -> int:
        def handle(event: dict[str, Any]) -> dict[str, Any]:
            with self.meter.hop("processor"):
                result: dict[str, Any] = processor.handler(event, None)
                return result

        with self.meter.hop("sqs-poller"):
            polled = self.stack.poll_processor(handle)
        assert polled["batchItemFailures"] == []
        return int(polled["received"])

    def audit(self, *tables: str) -> None:
        records = [r for table in tables for r in self.stack.stream_records(table)]
        assert records
        with self.meter.hop("audit"):
            assert audit.handler({"Records": records}, None) == {"batchItemFailures": []}

    def expire(self, webhook_ids: list[str]) -> None:
        """What the TTL does after 30 days (moto's never deletes): free, but audited."""
        for webhook_id in webhook_ids:
            self.stack.clients.dynamodb.delete_item(
                TableName=self.stack.webhooks_table, Key={"webhookId": {"S": webhook_id}}
            )

    def one_at_a_time(self) -> list[str]:
        [webhook_id] = self.receive(1)
        self.audit(self.stack.webhooks_table)  # insert + enqueuedAt, one batch
        assert self.process() == 1
        self.audit(self.stack.webhooks_table)  # processed
        self.audit(self.stack.payments_table)  # the payment
        self.expire([webhook_id])
        self.audit(self.stack.webhooks_table)  # the TTL removal
        return [webhook_id]

    def ten_at_a_time(self) -> list[str]:
        webhook_ids = self.receive(10)
        assert self.process() == 10
        self.audit(self.stack.webhooks_table)
        self.audit(self.stack.payments_table)
        self.expire(webhook_ids)
        self.audit(self.stack.webhooks_table)
        return webhook_ids


def per_webhook(meter: Meter, webhooks: int) -> dict[str, float]:
    counts: dict[str, float] = {}
    for (hop, service, operation), calls in meter.calls.items():
        if hop == "unattributed" or (hop == "sqs-poller" and operation not in ESM_CALLS):
            continue
        if operation == "GetSecretValue":
            continue  # once per cold start and per cache period, not per webhook
        counts[f"{hop} {service}:{operation}"] = calls / webhooks
    for hop, events in meter.events.items():
        counts[f"{hop} events:entries"] = events / webhooks
    for unit, counter in (("WRU", meter.wru), ("RRU", meter.rru)):
        for (hop, table), units in counter.items():
            counts[f"{hop} {unit} {table.removeprefix('payhook-')}"] = units / webhooks
    return {name: round(value, 2) for name, value in sorted(counts.items()) if value}


def measure(stack: AwsStack, run: Callable[[Pipeline], list[str]], rounds: int) -> dict[str, float]:
    meter = Meter(stack.session.client("dynamodb"))
    warm_up = Pipeline(stack, meter)
    warm_up.one_at_a_time()  # cold starts, the secret read and the audit chain's first entry
    clients = default_clients()
    meter.attach(clients.dynamodb, clients.sqs, clients.kms, clients.events)
    meter.attach(clients.secretsmanager, stack.clients.sqs)
    pipeline = Pipeline(stack, meter)
    webhooks = sum(len(run(pipeline)) for _ in range(rounds))
    return per_webhook(meter, webhooks)


@pytest.mark.parametrize(
    ("shape", "run", "rounds"),
    [("one_at_a_time", Pipeline.one_at_a_time, 3), ("ten_at_a_time", Pipeline.ten_at_a_time, 1)],
)
def test_requests_and_capacity_per_webhook(
    lambda_env: AwsStack, shape: str, run: Callable[[Pipeline], list[str]], rounds: int
) -> None:
    measured = measure(lambda_env, run, rounds)

    assert measured == EXPECTED.get(shape), json.dumps(measured, indent=1)
