"""The AWS side on the moto emulator: resources as the infrastructure contract defines them.

The resources come from ``resources.py`` (tables, queues, bus); this adds the providers secret
and the audit key. ``AwsStack`` also turns moto's API answers into the events Lambda would
deliver (SQS batches, DynamoDB stream batches), so the handlers run as deployed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from payhook.backends.aws.clients import AwsClients
from tests.aws.resources import create_bus, create_queues, create_tables

EVENTS = Path(__file__).parent.parent / "events" / "aws"
REGION = "eu-west-1"
STRIPE_SECRET = "whsec_payhook_aws_fixture_5c1f0e"  # signs apigw_stripe_*.json
MAX_RECEIVE_COUNT = 3


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def stripe_delivery(body: bytes, timestamp: int, secret: str = STRIPE_SECRET) -> dict[str, Any]:
    """The recorded API Gateway event carrying ``body`` with a fresh Stripe signature."""
    event = load_event("apigw_stripe_payment_intent_succeeded.json")
    signature = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    header = f"t={timestamp},v1={signature}"
    event["headers"]["Stripe-Signature"] = header
    event["multiValueHeaders"]["Stripe-Signature"] = [header]
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    return event


def stripe_body(
    event_id: str,
    payment_id: str,
    event_type: str = "payment_intent.succeeded",
    amount: int = 4999,
    created: int = 1_700_000_000,
) -> bytes:
    obj = {
        "id": payment_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if event_type == "payment_intent.succeeded" else 0,
        "currency": "eur",
        "status": "succeeded",
    }
    event = {
        "id": event_id,
        "object": "event",
        "created": created,
        "type": event_type,
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


@dataclass
class AwsStack:
    session: boto3.session.Session
    clients: AwsClients
    env: dict[str, str]
    webhooks_table: str = "payhook-webhooks"
    payments_table: str = "payhook-payments"
    audit_table: str = "payhook-audit"
    queue_url: str = ""
    dlq_url: str = ""
    events_queue_url: str = ""
    audit_key_id: str = ""  # the KMS HMAC key authenticating the audit chain
    _iterators: dict[str, list[str]] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def webhook_item(self, webhook_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.clients.dynamodb.get_item(
            TableName=self.webhooks_table, Key={"webhookId": {"S": webhook_id}}
        ).get("Item")
        return item

    def payment_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.clients.dynamodb.scan(TableName=self.payments_table)[
            "Items"
        ]
        return items

    def receive(self, queue_url: str, max_messages: int = 10) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.clients.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def queue_depth(self, queue_url: str) -> int:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """What the SQS event source mapping hands the processor for these messages."""
        template = load_event("sqs_processing_batch.json")["Records"][0]
        arn = self.clients.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        records = []
        for message in messages:
            record = copy.deepcopy(template)
            record.update(
                messageId=message["MessageId"],
                receiptHandle=message["ReceiptHandle"],
                body=message["Body"],
                attributes=message["Attributes"],
                md5OfBody=message["MD5OfBody"],
                eventSourceARN=arn,
                awsRegion=REGION,
            )
            records.append(record)
        return {"Records": records}

    def poll_processor(self, handle: Any) -> dict[str, Any]:
        """One poll of the event source mapping: receive, invoke, delete what succeeded.

        A failed message is made visible again at once (its visibility timeout, elapsed).
        """
        messages = self.receive(self.queue_url)
        if not messages:
            return {"batchItemFailures": [], "received": 0}
        result: dict[str, Any] = handle(self.sqs_event(messages))
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        done = [m for m in messages if m["MessageId"] not in failed]
        for message in messages:
            if message["MessageId"] in failed:
                self.clients.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
        if done:  # one DeleteMessageBatch, as the event source mapping does
            self.clients.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        return {**result, "received": len(messages)}

    def stream_records(self, table: str) -> list[dict[str, Any]]:
        """New records of ``table``'s stream since the last call, shaped as Lambda delivers."""
        # botocore routes stream ARNs to an account endpoint moto does not match; pin it.
        streams = self.session.client(
            "dynamodbstreams", endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
        )
        arn = self.clients.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        if arn not in self._iterators:
            shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            self._iterators[arn] = [
                streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                for shard in shards
            ]
        records = []
        for index, iterator in enumerate(self._iterators[arn]):
            page = streams.get_records(ShardIterator=iterator)
            self._iterators[arn][index] = page["NextShardIterator"]
            records += [_lambda_stream_record(r) for r in page["Records"]]
        return records

    def published_events(self) -> list[dict[str, Any]]:
        """The EventBridge events the rule forwarded to the test queue (then deleted)."""
        found = []
        while messages := self.receive(self.events_queue_url):
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.clients.sqs.delete_message(
                    QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return found


def _lambda_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lambda_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lambda_json(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return int(value.timestamp())
    return value


def _lambda_stream_record(record: dict[str, Any]) -> dict[str, Any]:
    """boto3 decodes binary and dates; Lambda's event carries base64 and epoch seconds."""
    shaped: dict[str, Any] = _lambda_json(record)
    shaped.pop("eventSourceARN", None)  # moto has none; keys tell the tables apart anyway
    return shaped


def create_stack(session: boto3.session.Session) -> AwsStack:
    stack = AwsStack(session=session, clients=AwsClients(session), env={})
    create_tables(
        session.client("dynamodb"),
        webhooks=stack.webhooks_table,
        payments=stack.payments_table,
        audit=stack.audit_table,
    )
    stack.queue_url, stack.dlq_url = create_queues(
        session.client("sqs"), max_receive_count=MAX_RECEIVE_COUNT
    )
    bus, stack.events_queue_url = create_bus(session)
    secret = {"providers": {"stripe": {"secrets": [STRIPE_SECRET], "tolerance_seconds": 300}}}
    secret_arn = session.client("secretsmanager").create_secret(
        Name="payhook/providers", SecretString=json.dumps(secret)
    )["ARN"]
    stack.audit_key_id = session.client("kms").create_key(
        KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Description="payhook audit chain"
    )["KeyMetadata"]["Arn"]
    stack.env = {
        "PAYHOOK_AUDIT_KEY_ID": stack.audit_key_id,
        "PAYHOOK_WEBHOOKS_TABLE": stack.webhooks_table,
        "PAYHOOK_PAYMENTS_TABLE": stack.payments_table,
        "PAYHOOK_AUDIT_TABLE": stack.audit_table,
        "PAYHOOK_QUEUE_URL": stack.queue_url,
        "PAYHOOK_EVENT_BUS_NAME": bus,
        "PAYHOOK_PROVIDERS_SECRET_ARN": secret_arn,
        "PAYHOOK_ENVIRONMENT": "test",
        "PAYHOOK_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
        "POWERTOOLS_SERVICE_NAME": "payhook",
    }
    return stack
