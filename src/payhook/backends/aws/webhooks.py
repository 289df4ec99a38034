"""The AWS ``WebhookStore``: a conditional PutItem per webhook, then SQS.

A webhook is acknowledged only after both calls succeed. If the Lambda dies between them
the item stays ``received`` without a message; the provider's retry finds it and enqueues
it again (processing is idempotent), and if the provider never retries, the sweeper does
(``sweep.py``). A duplicate of a processed (or dead) webhook changes nothing: a dead one
waits for a redrive (``redrive.py``), since sending it again would only fail again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payhook.backends.aws.errors import CONDITION_FAILED, error_code, unavailable
from payhook.backends.aws.items import Item, n, s, unsigned_event_key, webhook_item
from payhook.backends.aws.messages import send_to_queue
from payhook.core.clock import Clock, system_clock
from payhook.core.model import Stored, StoredWebhook, WebhookStatus

log = logging.getLogger("payhook.aws.webhooks")

BY_UNSIGNED_EVENT_ID = "byUnsignedEventId"  # infra/constructs/storage.py


class DynamoWebhookStore:
    def __init__(
        self,
        dynamodb: Any,
        sqs: Any,
        *,
        table: str,
        queue_url: str,
        retention_seconds: int,
        clock: Clock = system_clock,
    ) -> None:
        self.dynamodb = dynamodb
        self.sqs = sqs
        self.table = table
        self.queue_url = queue_url
        self.retention_seconds = retention_seconds
        self.clock = clock

    def store(self, webhooks: Sequence[StoredWebhook]) -> list[Stored]:
        """Raises PayloadTooLargeError, before writing anything, when a payload cannot fit."""
        items = {
            w.webhook_id: webhook_item(w, int(w.received_at) + self.retention_seconds)
            for w in webhooks
        }
        results: list[Stored] = []
        to_enqueue: list[str] = []
        seen: set[str] = set()
        for webhook in webhooks:
            if webhook.webhook_id in seen:  # a batch repeating an event: stored once
                results.append(Stored.DUPLICATE)
                continue
            seen.add(webhook.webhook_id)
            stored_status = self._put(items[webhook.webhook_id])
            if stored_status is not None:
                results.append(Stored.DUPLICATE)
            elif not webhook.id_signed and self._flag_conflict(webhook):
                results.append(Stored.CONFLICT)
            else:
                results.append(Stored.NEW)
            if stored_status in (None, WebhookStatus.RECEIVED):
                to_enqueue.append(webhook.webhook_id)
        send_to_queue(self.sqs, self.queue_url, to_enqueue)
        self._mark_enqueued(to_enqueue)
        return results

    def _flag_conflict(self, webhook: StoredWebhook) -> bool:
        """Whether another delivery carries the same unsigned event id (then flag this one).

        The index is eventually consistent, so two such deliveries within moments of each
        other may go unflagged; both are stored and processed either way."""
        try:
            response = self.dynamodb.query(
                TableName=self.table,
                IndexName=BY_UNSIGNED_EVENT_ID,
                KeyConditionExpression="unsignedEventKey = :key",
                ExpressionAttributeValues={
                    ":key": s(unsigned_event_key(webhook.provider, webhook.event_id))
                },
                ProjectionExpression="webhookId",
                Limit=2,
            )
            others = [
                i for i in response.get("Items", []) if i["webhookId"]["S"] != webhook.webhook_id
            ]
            if not others:
                return False
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"webhookId": s(webhook.webhook_id)},
                UpdateExpression="SET #conflict = :yes",
                ExpressionAttributeNames={"#conflict": "conflict"},  # a reserved word
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )
        except (ClientError, BotoCoreError) as exc:  # the flag is diagnostic: log, go on
            code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            log.warning(
                "could not check for a conflicting delivery",
                extra={"webhook_id": webhook.webhook_id, "error": code},
            )
            return False
        return True

    def _put(self, item: Item) -> WebhookStatus | None:
        """Insert; returns None when new, else the status of the item already stored."""
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(webhookId)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise unavailable("storing the webhook", exc) from exc
            old = exc.response.get("Item")
        except BotoCoreError as exc:
            raise unavailable("storing the webhook", exc) from exc
        # ALL_OLD returns the item that failed the condition; without it, enqueueing again
        # is the safe choice (processing is idempotent).
        return WebhookStatus(old["status"]["S"]) if old else WebhookStatus.RECEIVED

    def _mark_enqueued(self, webhook_ids: list[str]) -> None:
        """Record when the message was sent; diagnostic only, so a failure is just logged."""
        now = self.clock()
        for webhook_id in webhook_ids:
            try:
                self.dynamodb.update_item(
                    TableName=self.table,
                    Key={"webhookId": s(webhook_id)},
                    UpdateExpression="SET enqueuedAt = :now",
                    ConditionExpression="#s = :received",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":now": n(now),
                        ":received": s(WebhookStatus.RECEIVED),
                    },
                )
            except (ClientError, BotoCoreError) as exc:
                code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
                if code != CONDITION_FAILED:  # already processed: nothing to note
                    extra = {"webhook_id": webhook_id, "error": code}
                    log.warning("could not record enqueuedAt", extra=extra)
