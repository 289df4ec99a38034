"""The AWS ``ProcessingStore``: one TransactWriteItems per processed webhook.

The transaction marks the webhook processed (only if it is still ``received``) and puts each
changed payment with a condition on its version. The canonical events the commit publishes
ride on the payment items (``publishedEvents``); the audit Lambda forwards them from the
stream to EventBridge, so an applied change is published once committed (an outbox).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payhook.backends.aws.errors import (
    CONDITION_FAILED,
    TRANSACTION_CANCELED,
    aws_call,
    cancellation_codes,
    error_code,
    unavailable,
)
from payhook.backends.aws.items import Item, n, s, webhook_from_item
from payhook.backends.aws.status_index import STATUS_SHARD, status_shard
from payhook.core.clock import Clock, system_clock
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.core.ports import PaymentWrite, ProcessingCommit
from payhook.errors import ConcurrencyError

_LOST_RACE = {"ConditionalCheckFailed", "TransactionConflict"}
ERROR_LIMIT = 500


def _json(data: Any) -> dict[str, Any]:
    return s(json.dumps(data, sort_keys=True, separators=(",", ":")))


def payment_item(record: PaymentRecord, version: int, published: list[dict[str, Any]]) -> Item:
    """The payment row at ``version``, with the canonical events its commit publishes."""
    data = record.to_dict()
    data["version"] = version
    return {
        "provider": s(record.provider),
        "paymentId": s(record.payment_id),
        "record": _json(data),
        "status": s(str(record.status)),
        "amount": n(record.amount),
        "currency": s(record.currency) if record.currency else {"NULL": True},
        "amountRefunded": n(record.amount_refunded),
        "version": n(version),
        "updatedAt": n(record.updated_at),
        "publishedEvents": _json(published),
    }


def payment_from_item(item: Item) -> PaymentRecord:
    return PaymentRecord.from_dict(json.loads(item["record"]["S"]))


class DynamoProcessingStore:
    def __init__(
        self,
        dynamodb: Any,
        *,
        webhooks_table: str,
        payments_table: str,
        clock: Clock = system_clock,
    ) -> None:
        self.dynamodb = dynamodb
        self.webhooks_table = webhooks_table
        self.payments_table = payments_table
        self.clock = clock

    def get_webhook(self, webhook_id: str) -> StoredWebhook | None:
        with aws_call("reading the webhook"):
            item = self.dynamodb.get_item(
                TableName=self.webhooks_table,
                Key={"webhookId": s(webhook_id)},
                ConsistentRead=True,
            ).get("Item")
        return webhook_from_item(item) if item else None

    def get_payment(self, provider: str, payment_id: str) -> PaymentRecord | None:
        with aws_call("reading the payment"):
            item = self.dynamodb.get_item(
                TableName=self.payments_table,
                Key={"provider": s(provider), "paymentId": s(payment_id)},
                ConsistentRead=True,
            ).get("Item")
        return payment_from_item(item) if item else None

    def commit(self, commit: ProcessingCommit) -> bool:
        published: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for event in commit.published:
            published[(event["provider"], event["paymentId"])].append(event)
        items = [self._mark_processed(commit)]
        for write in commit.payments:
            key = (write.record.provider, write.record.payment_id)
            items.append(self._put_payment(write, published[key]))
        try:
            self.dynamodb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) != TRANSACTION_CANCELED:
                raise unavailable("committing the processed webhook", exc) from exc
            codes = cancellation_codes(exc)
            if codes[:1] == ["ConditionalCheckFailed"]:
                return False  # no longer received: another delivery processed it
            if _LOST_RACE & set(codes):
                raise ConcurrencyError(f"webhook {commit.webhook_id}: a payment changed") from exc
            raise unavailable("committing the processed webhook", exc) from exc
        except BotoCoreError as exc:
            raise unavailable("committing the processed webhook", exc) from exc
        return True

    def _mark_processed(self, commit: ProcessingCommit) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.webhooks_table,
                "Key": {"webhookId": s(commit.webhook_id)},
                "UpdateExpression": "SET #s = :processed, #shard = :shard, processedAt = :at"
                " REMOVE #e ADD attempts :one",
                "ConditionExpression": "#s = :received",
                "ExpressionAttributeNames": {"#s": "status", "#shard": STATUS_SHARD, "#e": "error"},
                "ExpressionAttributeValues": {
                    ":processed": s(WebhookStatus.PROCESSED),
                    ":shard": status_shard(WebhookStatus.PROCESSED, commit.webhook_id),
                    ":received": s(WebhookStatus.RECEIVED),
                    ":at": n(commit.processed_at),
                    ":one": n(1),
                },
            }
        }

    def _put_payment(self, write: PaymentWrite, events: list[dict[str, Any]]) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.payments_table,
            "Item": payment_item(write.record, write.expected_version + 1, events),
        }
        if write.expected_version == 0:
            put["ConditionExpression"] = "attribute_not_exists(paymentId)"
        else:
            put["ConditionExpression"] = "#v = :expected"
            put["ExpressionAttributeNames"] = {"#v": "version"}
            put["ExpressionAttributeValues"] = {":expected": n(write.expected_version)}
        return {"Put": put}

    def record_failure(self, webhook_id: str, error: str, *, dead: bool = False) -> None:
        """Note a failed attempt on the webhook (reason only, never the payload).

        ``dead``: this was the last attempt SQS allows before its redrive moves the message to
        the dead-letter queue, so a still-received webhook becomes ``dead`` (as on SQLite).
        ``lastAttemptAt`` tells the sweeper that SQS still holds a message for the webhook.
        """
        update = "SET #e = :error, lastAttemptAt = :at ADD attempts :one"
        names = {"#e": "error"}
        values = {":error": s(error[:ERROR_LIMIT]), ":one": n(1), ":at": n(self.clock())}
        condition = "attribute_exists(webhookId)"
        if dead:
            update = (
                "SET #e = :error, lastAttemptAt = :at, #st = :dead, #shard = :shard"
                " ADD attempts :one"
            )
            names.update({"#st": "status", "#shard": STATUS_SHARD})
            values.update({":dead": s("dead"), ":received": s("received")})
            values[":shard"] = status_shard(WebhookStatus.DEAD, webhook_id)
            condition += " AND #st = :received"
        with aws_call("recording the failure"):
            try:
                self.dynamodb.update_item(
                    TableName=self.webhooks_table,
                    Key={"webhookId": s(webhook_id)},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except ClientError as exc:
                # The webhook expired meanwhile, or (dead) was processed after all.
                if error_code(exc) != CONDITION_FAILED:
                    raise
