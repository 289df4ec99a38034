"""End to end through the three deployed handlers: API Gateway -> SQS -> streams -> audit."""

from __future__ import annotations

import json
import time

import pytest

from payhook.backends.aws.audit import DynamoAuditLog, KmsChainKey
from payhook.core.audit import verify_chain
from payhook.core.model import webhook_id_for
from payhook.runtimes.aws_lambda import audit, processor, receiver
from tests.aws.emulator import AwsStack, stripe_body, stripe_delivery

pytestmark = pytest.mark.aws


def test_a_signed_delivery_becomes_a_payment_an_audit_trail_and_a_published_event(
    lambda_env: AwsStack,
) -> None:
    stack = lambda_env
    body = stripe_body("evt_e2e_1", "pi_e2e_1", amount=4999)
    answer = receiver.handler(stripe_delivery(body, int(time.time())), None)

    assert answer["statusCode"] == 200
    webhook_id = webhook_id_for("stripe", "evt_e2e_1")
    assert json.loads(answer["body"])["webhookId"] == webhook_id
    assert stack.webhook_item(webhook_id)["status"]["S"] == "received"

    polled = stack.poll_processor(lambda event: processor.handler(event, None))
    assert polled["received"] == 1
    assert polled["batchItemFailures"] == []
    assert stack.webhook_item(webhook_id)["status"]["S"] == "processed"
    [payment] = stack.payment_items()
    assert payment["paymentId"]["S"] == "pi_e2e_1"
    assert payment["status"]["S"] == "succeeded"
    assert payment["amount"]["N"] == "4999"
    assert payment["currency"]["S"] == "EUR"
    assert stack.queue_depth(stack.queue_url) == 0

    records = stack.stream_records(stack.webhooks_table) + stack.stream_records(
        stack.payments_table
    )
    assert audit.handler({"Records": records}, None) == {"batchItemFailures": []}

    log = DynamoAuditLog(stack.clients.dynamodb, table=stack.audit_table)
    entries = list(log.entries())
    key = KmsChainKey(stack.clients.kms, key_id=stack.audit_key_id)
    report = verify_chain(entries, key, log.recorded_head())
    assert report.ok, report.reason
    assert [(e.entity, e.action, e.data["status"]) for e in entries] == [
        ("webhook", "insert", "received"),
        ("webhook", "modify", "processed"),
        ("payment", "insert", "succeeded"),
    ]
    [published] = stack.published_events()
    assert published["source"] == "payhook"
    assert published["detail-type"] == "payment.updated"
    assert published["detail"]["paymentId"] == "pi_e2e_1"
    assert published["detail"]["payment"]["amount"] == 4999
    assert published["detail"]["cause"]["webhookId"] == webhook_id
