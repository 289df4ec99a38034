"""The resources of the infrastructure contract, created on moto as ``infra/`` defines them.

Tables (keys, indexes as projected, streams, TTL), the processing queue with its redrive to a
DLQ, and the event bus with a rule forwarding payhook's events to an observer queue (where a
test reads what was published).
"""

from __future__ import annotations

import json
from typing import Any

import boto3


def create_tables(ddb: Any, *, webhooks: str, payments: str, audit: str) -> None:
    stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ddb.create_table(
        TableName=webhooks,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "webhookId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "webhookId", "AttributeType": "S"},
            {"AttributeName": "statusShard", "AttributeType": "S"},
            {"AttributeName": "receivedAt", "AttributeType": "N"},
            {"AttributeName": "unsignedEventKey", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byStatus",
                "KeySchema": [
                    {"AttributeName": "statusShard", "KeyType": "HASH"},
                    {"AttributeName": "receivedAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "byUnsignedEventId",
                "KeySchema": [{"AttributeName": "unsignedEventKey", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        StreamSpecification=stream,
    )
    ddb.update_time_to_live(
        TableName=webhooks,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
    )
    ddb.create_table(
        TableName=payments,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "provider", "KeyType": "HASH"},
            {"AttributeName": "paymentId", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "provider", "AttributeType": "S"},
            {"AttributeName": "paymentId", "AttributeType": "S"},
        ],
        StreamSpecification=stream,
    )
    ddb.create_table(
        TableName=audit,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "chain", "KeyType": "HASH"},
            {"AttributeName": "seq", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "chain", "AttributeType": "S"},
            {"AttributeName": "seq", "AttributeType": "N"},
        ],
    )


def create_queues(sqs: Any, *, max_receive_count: int) -> tuple[str, str]:
    """The processing queue and its dead-letter queue: (queue URL, DLQ URL)."""
    dlq_url: str = sqs.create_queue(QueueName="payhook-processing-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
    queue_url: str = sqs.create_queue(
        QueueName="payhook-processing",
        Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "60"},
    )["QueueUrl"]
    return queue_url, dlq_url


def create_bus(session: boto3.session.Session) -> tuple[str, str]:
    """The event bus and a queue observing its payment events: (bus name, queue URL)."""
    sqs, events = session.client("sqs"), session.client("events")
    observer_url: str = sqs.create_queue(QueueName="payhook-events-observer")["QueueUrl"]
    observer_arn = sqs.get_queue_attributes(QueueUrl=observer_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    bus = "payhook-events"
    events.create_event_bus(Name=bus)
    events.put_rule(
        Name="payhook-payment-updated",
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["payhook"], "detail-type": ["payment.updated"]}),
    )
    events.put_targets(
        Rule="payhook-payment-updated",
        EventBusName=bus,
        Targets=[{"Id": "observer", "Arn": observer_arn}],
    )
    return bus, observer_url
