"""Replay: process a stored webhook again, whatever its status (``payhook replay``).

The processor drops a message whose webhook is no longer ``received``, so a replay first sets
it back to ``received`` (one conditional update: only if the item exists), then sends it. The
ledger ignores facts it already holds, so replaying a processed webhook changes no payment.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payhook.backends.aws.errors import CONDITION_FAILED, error_code, unavailable
from payhook.backends.aws.items import n, s
from payhook.backends.aws.messages import send_to_queue
from payhook.backends.aws.status_index import STATUS_SHARD, status_shard
from payhook.core.clock import Clock, system_clock
from payhook.core.model import WebhookStatus


def replay_webhook(
    dynamodb: Any,
    sqs: Any,
    *,
    webhooks_table: str,
    queue_url: str,
    webhook_id: str,
    clock: Clock = system_clock,
) -> bool:
    """Queue ``webhook_id`` for processing again; False when no such webhook is stored."""
    try:
        dynamodb.update_item(
            TableName=webhooks_table,
            Key={"webhookId": s(webhook_id)},
            UpdateExpression="SET #s = :received, #shard = :shard, attempts = :zero,"
            " enqueuedAt = :now, replayedAt = :now REMOVE #e, lastAttemptAt",
            ConditionExpression="attribute_exists(webhookId)",
            ExpressionAttributeNames={"#s": "status", "#shard": STATUS_SHARD, "#e": "error"},
            ExpressionAttributeValues={
                ":received": s(WebhookStatus.RECEIVED),
                ":shard": status_shard(WebhookStatus.RECEIVED, webhook_id),
                ":zero": n(0),
                ":now": n(clock()),
            },
        )
    except ClientError as exc:
        if error_code(exc) == CONDITION_FAILED:
            return False
        raise unavailable("resetting the webhook for a replay", exc) from exc
    except BotoCoreError as exc:
        raise unavailable("resetting the webhook for a replay", exc) from exc
    send_to_queue(sqs, queue_url, [webhook_id])
    return True
