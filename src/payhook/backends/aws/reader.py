"""Read-only answers for operators over a deployed stack: the ``SqliteReader`` questions.

Paging uses DynamoDB's own position: a page's cursor is its ``LastEvaluatedKey``, encoded
opaquely, and the next page starts there (``ExclusiveStartKey``). A last page may still carry
a cursor that leads to an empty page (DynamoDB cannot tell whether more match). A ``--status``
list's cursor holds one such position per shard of the ``byStatus`` index (``status_index.py``).

Order differs from SQLite where DynamoDB has no index for it: ``--status`` lists come newest
first through the ``byStatus`` index (every shard queried, merged on ``receivedAt``); other
webhook lists, and payment lists, are Scans in table order. Scans are acceptable here only
because this is the read-only, operator-driven CLI path: no function of the stack scans.
``total`` is counted (Select=COUNT) with the same filters, one more pass over what matches.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from payhook.backends.aws.errors import aws_call
from payhook.backends.aws.items import Item, batch_get, optional_n, optional_s, s, webhook_from_item
from payhook.backends.aws.payments import DynamoProcessingStore, payment_from_item
from payhook.backends.aws.status_index import (
    BY_STATUS,
    STATUS_SHARD,
    shard_keys,
    sharded_page,
)
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.core.queries import Page, PaymentQuery, WebhookQuery
from payhook.errors import PayhookError


class CursorError(PayhookError):
    """A cursor this stack's reader never printed."""


@dataclass(frozen=True, slots=True)
class DeadWebhook:
    """A webhook that exhausted its receives (``dead``), as ``dead-letters list`` shows it."""

    webhook_id: str
    reason: str
    receive_count: int
    failed_at: float


def encode_cursor(key: Item) -> str:
    return "d" + base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str) -> Item:
    try:
        if not cursor.startswith("d"):
            raise ValueError
        key = json.loads(base64.urlsafe_b64decode(cursor[1:].encode()))
        if not isinstance(key, dict) or not all(
            isinstance(v, dict) and len(v) == 1 and set(v) <= {"S", "N"} for v in key.values()
        ):
            raise ValueError
    except ValueError:
        raise _bad_cursor(cursor) from None
    return key


def _bad_cursor(cursor: str | None) -> CursorError:
    return CursorError(f"--cursor: got {cursor!r}, expected a cursor this command printed")


class DynamoReader:
    """Webhooks, payments and dead webhooks of a deployed stack, read-only and paged."""

    def __init__(self, dynamodb: Any, *, webhooks_table: str, payments_table: str) -> None:
        self.dynamodb = dynamodb
        self.webhooks_table = webhooks_table
        self.payments_table = payments_table
        # One item by its key: read as the processor reads it.
        self._items = DynamoProcessingStore(
            dynamodb, webhooks_table=webhooks_table, payments_table=payments_table
        )

    def close(self) -> None:
        """Nothing to release (boto3 clients close with the process)."""

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """DynamoDB has no read snapshot across calls: each read is consistent on its own."""
        yield

    # webhooks ----------------------------------------------------------------------------

    def webhook(self, webhook_id: str) -> StoredWebhook | None:
        return self._items.get_webhook(webhook_id)

    def webhooks(self, query: WebhookQuery) -> Page[StoredWebhook]:
        filters = _Filters()
        filters.equal("provider", query.provider)
        filters.equal("eventType", query.event_type)
        filters.equal("eventId", query.event_id)
        if query.status is not None and filters.empty:
            # Keys-only index: the keys come from it (every shard), the items from BatchGetItem.
            requests = [self._by_status(query, key) for key in shard_keys(query.status)]
            try:
                keys, cursor = sharded_page(self.dynamodb, requests, query.limit, query.cursor)
            except ValueError:
                raise _bad_cursor(query.cursor) from None
            total = sum(self._count({**r, "Select": "COUNT"}, "query") for r in requests)
            return Page([webhook_from_item(i) for i in self._get_items(keys)], total, cursor)
        filters.equal("#status", query.status, name="status")
        filters.compare("receivedAt", ">=", query.since)
        filters.compare("receivedAt", "<", query.until)
        request = {"TableName": self.webhooks_table, "ConsistentRead": True, **filters.request()}
        items, cursor = self._page(request, query.limit, query.cursor, "scan")
        total = self._count({**request, "Select": "COUNT"}, "scan")
        return Page([webhook_from_item(i) for i in items], total, cursor)

    def _by_status(self, query: WebhookQuery, shard: dict[str, str]) -> dict[str, Any]:
        """The Query of one shard of the index (its key under ``:shard``), newest first."""
        condition = "#shard = :shard"
        values: dict[str, Any] = {":shard": shard}
        if query.since is not None and query.until is not None:
            condition += " AND receivedAt BETWEEN :since AND :until"
            values.update({":since": _n(query.since), ":until": _n(query.until - 1e-6)})
        elif query.since is not None:
            condition += " AND receivedAt >= :since"
            values[":since"] = _n(query.since)
        elif query.until is not None:
            condition += " AND receivedAt < :until"
            values[":until"] = _n(query.until)
        return {
            "TableName": self.webhooks_table,
            "IndexName": BY_STATUS,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#shard": STATUS_SHARD},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }

    def _get_items(self, keys: list[Item]) -> list[Item]:
        """The items of ``keys``, in their order (an item expired meanwhile is left out)."""
        ids = [k["webhookId"]["S"] for k in keys]
        items = batch_get(
            self.dynamodb,
            self.webhooks_table,
            [{"webhookId": s(i)} for i in ids],
            "reading webhooks",
            ConsistentRead=True,
        )
        found = {item["webhookId"]["S"]: item for item in items}
        return [found[i] for i in ids if i in found]

    def dead_letters(self) -> list[DeadWebhook]:
        """Webhooks marked ``dead`` (through ``byStatus``), oldest failure first. The DLQ's
        messages are not read: reading one would hide it from a redrive for a while."""
        dead = WebhookQuery(status=WebhookStatus.DEAD)
        keys: list[Item] = []
        for shard in shard_keys(WebhookStatus.DEAD):
            request = self._by_status(dead, shard)
            while True:
                with aws_call("listing dead webhooks"):
                    answer = self.dynamodb.query(**request)
                keys += answer["Items"]
                if "LastEvaluatedKey" not in answer:
                    break
                request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        letters = [_dead(item) for item in self._get_items(keys)]
        return sorted(letters, key=lambda d: (d.failed_at, d.webhook_id))

    # payments ----------------------------------------------------------------------------

    def payment(self, provider: str, payment_id: str) -> PaymentRecord | None:
        return self._items.get_payment(provider, payment_id)

    def payments(self, query: PaymentQuery) -> Page[PaymentRecord]:
        """One provider: a Query of its partition; otherwise a Scan."""
        filters = _Filters()
        filters.equal("#status", query.status, name="status")
        request: dict[str, Any] = {"TableName": self.payments_table, "ConsistentRead": True}
        operation = "scan"
        if query.provider is not None:
            operation = "query"
            request["KeyConditionExpression"] = "provider = :provider"
            filters.values[":provider"] = s(query.provider)
        request.update(filters.request())
        items, cursor = self._page(request, query.limit, query.cursor, operation)
        total = self._count({**request, "Select": "COUNT"}, operation)
        return Page([payment_from_item(i) for i in items], total, cursor)

    # paging ------------------------------------------------------------------------------

    def _page(
        self, request: dict[str, Any], limit: int, cursor: str | None, operation: str
    ) -> tuple[list[Item], str | None]:
        """Up to ``limit`` matching items from ``cursor`` on, and the cursor after them."""
        request = dict(request)
        if cursor is not None:
            request["ExclusiveStartKey"] = decode_cursor(cursor)
        items: list[Item] = []
        while True:
            # With a filter, Limit counts items read, not matched: read only what may still
            # be needed, so the position after the last one is where the next page starts.
            request["Limit"] = limit - len(items)
            with aws_call("reading a page"):
                answer = getattr(self.dynamodb, operation)(**request)
            items += answer["Items"]
            last = answer.get("LastEvaluatedKey")
            if last is None:
                return items, None
            if len(items) >= limit:
                return items, encode_cursor(last)
            request["ExclusiveStartKey"] = last

    def _count(self, request: dict[str, Any], operation: str) -> int:
        request = dict(request)
        total = 0
        while True:
            with aws_call("counting"):
                answer = getattr(self.dynamodb, operation)(**request)
            total += int(answer["Count"])
            if "LastEvaluatedKey" not in answer:
                return total
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


class _Filters:
    """A FilterExpression built from the filters given."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    @property
    def empty(self) -> bool:
        return not self.clauses

    def equal(self, attribute: str, value: str | None, *, name: str | None = None) -> None:
        if value is None:
            return
        placeholder = f":f{len(self.values)}"
        if name is not None:
            self.names[attribute] = name
        self.clauses.append(f"{attribute} = {placeholder}")
        self.values[placeholder] = s(value)

    def compare(self, attribute: str, operator: str, value: float | None) -> None:
        if value is None:
            return
        placeholder = f":f{len(self.values)}"
        self.clauses.append(f"{attribute} {operator} {placeholder}")
        self.values[placeholder] = _n(value)

    def request(self) -> dict[str, Any]:
        request: dict[str, Any] = {}
        if self.clauses:
            request["FilterExpression"] = " AND ".join(self.clauses)
        if self.names:
            request["ExpressionAttributeNames"] = self.names
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        return request


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


def _dead(item: Item) -> DeadWebhook:
    failed_at = optional_n(item, "lastAttemptAt") or optional_n(item, "receivedAt") or 0.0
    attempts = int(item["attempts"]["N"]) if "attempts" in item else 0
    return DeadWebhook(item["webhookId"]["S"], optional_s(item, "error") or "", attempts, failed_at)
