"""The sweep: re-queue webhooks stranded in ``received`` (stored, but never queued).

The receiver answers 2xx only after both the put and the send, so a webhook is stranded only
when the send failed (or the Lambda died) after the put and the provider never retried its
non-2xx. The ``byStatus`` index (keys only; its STATUS_SHARDS ``received#n`` keys queried and
merged oldest first, ``status_index.py``) lists webhooks received before the bound; a read
of those items keeps the ones neither queued within the bound (``enqueuedAt``) nor attempted
within it (``lastAttemptAt``: SQS still holds their message and is retrying it); each is then
claimed with one conditional update, which holds only if that is still so, and sent. The
claim sets ``enqueuedAt`` (not ``status``, so ``statusShard`` stays), so one sweep, not every
sweep, re-queues a webhook. A webhook queued twice is still processed once (the processor
commits only while it is ``received``), so a sweep racing the receiver, a redrive or another
sweep is harmless.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payhook.backends.aws.errors import CONDITION_FAILED, aws_call, error_code, unavailable
from payhook.backends.aws.items import Item, batch_get, n, optional_n, s
from payhook.backends.aws.messages import SQS_BATCH_LIMIT, send_to_queue
from payhook.backends.aws.status_index import BY_STATUS, STATUS_SHARD, merged, shard_keys
from payhook.core.clock import Clock, system_clock
from payhook.core.model import WebhookStatus

log = logging.getLogger("payhook.aws.sweep")

PAGE_SIZE = 100  # BatchGetItem reads at most 100 keys
#: Candidates examined per run, in pages of PAGE_SIZE, for every page of the limit: a bound
#: on the reads one sweep makes when most candidates are still being retried by SQS.
MAX_PAGES_PER_LIMIT = 10
MAX_BATCH_GET_ROUNDS = 5


@dataclass(frozen=True, slots=True)
class SweepResult:
    #: Webhooks the index listed as received before the bound (the ones examined).
    found: int
    #: The ones claimed and sent to the processing queue.
    requeued: tuple[str, ...]


class WebhookSweeper:
    def __init__(
        self,
        dynamodb: Any,
        sqs: Any,
        *,
        table: str,
        queue_url: str,
        after_seconds: int,
        limit: int,
        clock: Clock = system_clock,
    ) -> None:
        if after_seconds <= 0 or limit <= 0:
            raise ValueError(
                f"got after_seconds={after_seconds}, limit={limit}; expected both positive"
            )
        self.dynamodb = dynamodb
        self.sqs = sqs
        self.table = table
        self.queue_url = queue_url
        self.after_seconds = after_seconds
        self.limit = limit
        self.clock = clock

    def sweep(self) -> SweepResult:
        """Re-queue at most ``limit`` stranded webhooks; StorageUnavailableError if a read or
        a send fails (a claimed webhook whose send failed waits for a later sweep)."""
        now = self.clock()
        cutoff = now - self.after_seconds
        found = 0
        requeued: list[str] = []
        for page in self._received_before(cutoff):
            found += len(page)
            # Read before claiming: most candidates were queued or attempted lately (SQS
            # holds them), and a read costs less than a failed conditional write.
            stranded = self._stranded(page, cutoff)[: self.limit - len(requeued)]
            for start in range(0, len(stranded), SQS_BATCH_LIMIT):
                chunk = stranded[start : start + SQS_BATCH_LIMIT]
                claimed = [wid for wid in chunk if self._claim(wid, now, cutoff)]
                send_to_queue(self.sqs, self.queue_url, claimed)
                requeued += claimed
            if len(requeued) >= self.limit:
                break
        if requeued:
            log.warning(
                "stranded webhooks re-queued",
                extra={"count": len(requeued), "webhook_ids": requeued[:SQS_BATCH_LIMIT]},
            )
        return SweepResult(found, tuple(requeued))

    def _received_before(self, cutoff: float) -> Iterator[list[str]]:
        """Pages of ids of webhooks ``received`` before ``cutoff``, oldest first across the
        index's shards (each shard is queried in order; the shards are merged)."""
        shards = (
            self._shard_received_before(key, cutoff) for key in shard_keys(WebhookStatus.RECEIVED)
        )
        # Bounded: at most MAX_PAGES_PER_LIMIT pages for every page of `limit`.
        budget = MAX_PAGES_PER_LIMIT * -(-self.limit // PAGE_SIZE) * PAGE_SIZE
        page: list[str] = []
        for item in itertools.islice(merged(shards, newest_first=False), budget):
            page.append(item["webhookId"]["S"])
            if len(page) == PAGE_SIZE:
                yield page
                page = []
        if page:
            yield page

    def _shard_received_before(self, key: dict[str, str], cutoff: float) -> Iterator[Item]:
        """One shard's entries received before ``cutoff``, oldest first, read a page at a time
        (only when the merge needs them)."""
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_STATUS,
            "KeyConditionExpression": "#shard = :shard AND receivedAt < :cutoff",
            "ExpressionAttributeNames": {"#shard": STATUS_SHARD},
            "ExpressionAttributeValues": {":shard": key, ":cutoff": n(cutoff)},
            "Limit": PAGE_SIZE,
        }
        while True:
            with aws_call("listing stranded webhooks"):
                page = self.dynamodb.query(**query)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _stranded(self, webhook_ids: list[str], cutoff: float) -> list[str]:
        """Those of ``webhook_ids`` neither queued nor attempted since ``cutoff``, in order."""
        if not webhook_ids:
            return []
        items = batch_get(
            self.dynamodb,
            self.table,
            [{"webhookId": s(wid)} for wid in webhook_ids],
            "reading stranded webhooks",
            max_rounds=MAX_BATCH_GET_ROUNDS,  # unprocessed keys are retried, a bounded number
            ProjectionExpression="webhookId, #s, enqueuedAt, lastAttemptAt",
            ExpressionAttributeNames={"#s": "status"},
        )
        stranded = {
            item["webhookId"]["S"]
            for item in items
            if item.get("status", {}).get("S") == WebhookStatus.RECEIVED
            and (optional_n(item, "enqueuedAt") or 0) < cutoff
            and (optional_n(item, "lastAttemptAt") or 0) < cutoff
        }
        return [wid for wid in webhook_ids if wid in stranded]

    def _claim(self, webhook_id: str, now: float, cutoff: float) -> bool:
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"webhookId": s(webhook_id)},
                UpdateExpression="SET enqueuedAt = :now ADD sweeps :one",
                ConditionExpression="#s = :received"
                " AND (attribute_not_exists(enqueuedAt) OR enqueuedAt < :cutoff)"
                " AND (attribute_not_exists(lastAttemptAt) OR lastAttemptAt < :cutoff)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":now": n(now),
                    ":one": n(1),
                    ":cutoff": n(cutoff),
                    ":received": s(WebhookStatus.RECEIVED),
                },
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False  # processed meanwhile, queued recently, or still being retried
            raise unavailable("claiming a stranded webhook", exc) from exc
        except BotoCoreError as exc:
            raise unavailable("claiming a stranded webhook", exc) from exc
        return True
