"""Replay: process a stored webhook again, whatever its status (``payhook replay``).

The processor drops a message whose webhook is no longer ``received``, so a replay first sets
it back to ``received`` (one conditional update: only if the item exists), then sends it. The
ledger ignores facts it already holds, so replaying a processed webhook changes no payment.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payhook.backends.aws.errors import CONDITION_FAILED, error_code, unavailable
from payhook.backends.aws.items import n
from payhook.backends.aws.messages import send_to_queue
from payhook.backends.aws.status_index import reset_to_received
from payhook.core.clock import Clock, system_clock


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
            **reset_to_received(webhooks_table, webhook_id, n(clock()), stamp="replayedAt"),
            ConditionExpression="attribute_exists(webhookId)",
        )
    except ClientError as exc:
        if error_code(exc) == CONDITION_FAILED:
            return False
        raise unavailable("resetting the webhook for a replay", exc) from exc
    except BotoCoreError as exc:
        raise unavailable("resetting the webhook for a replay", exc) from exc
    send_to_queue(sqs, queue_url, [webhook_id])
    return True
