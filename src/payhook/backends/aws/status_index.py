"""The ``byStatus`` index, write-sharded: its partition key is ``statusShard``, never ``status``.

One sentence: every webhook item carries ``statusShard = "<status>#<n>"`` with
``n = crc32(webhookId) % STATUS_SHARDS``, set in the same request as every write that sets
or changes ``status``, and every reader of the index queries all ``STATUS_SHARDS`` keys of a
status and merges them on ``receivedAt`` (the sort key, as before).

Why: DynamoDB serves at most 1,000 WCU/s on one partition key value, and every webhook writes
the ``received`` key twice (put, then delete when processed), so one key stopped the stack at
~500 webhooks/s; N keys carry N x 500/s. 16 gives ~8,000/s: above the webhooks table's default
quota (~3,300/s) and as much as the audit chain's most (64 shards, ~8,000/s), so the index no
longer binds first, while each sweep and status listing costs only 16 small keys-only queries.

A constant, not a stack setting: writers (the functions) and readers (the functions and the
operator CLI) must agree on it, and it is fixed once deployed (changing it moves every
webhook's key: the items would need rewriting). crc32, not ``hash()``: the same in every
process. Items written before ``statusShard`` existed are not in the index (the stack was not
deployed anywhere before it; docs/deploy.md).
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from payhook.backends.aws.errors import aws_call
from payhook.core.model import WebhookStatus

BY_STATUS = "byStatus"  # infra/constructs/storage.py: statusShard (S) + receivedAt (N), keys only
STATUS_SHARD = "statusShard"
STATUS_SHARDS = 16

Item = dict[str, dict[str, Any]]


def shard_of(webhook_id: str) -> int:
    return zlib.crc32(webhook_id.encode()) % STATUS_SHARDS


def status_shard(status: str, webhook_id: str) -> dict[str, str]:
    """The ``statusShard`` attribute value of ``webhook_id`` in ``status``."""
    return {"S": f"{status}#{shard_of(webhook_id)}"}


def reset_to_received(
    table: str, webhook_id: str, now: dict[str, str], *, stamp: str
) -> dict[str, Any]:
    """The ``update_item`` arguments (the caller adds its condition) that set a webhook back
    to ``received``, its shard key with it, with fresh attempts, ``enqueuedAt`` and ``stamp``
    at ``now``, and no error: what a redrive and a replay both do before re-queueing it."""
    return {
        "TableName": table,
        "Key": {"webhookId": {"S": webhook_id}},
        "UpdateExpression": "SET #s = :received, #shard = :shard, attempts = :zero,"
        f" enqueuedAt = :now, {stamp} = :now REMOVE #e, lastAttemptAt",
        "ExpressionAttributeNames": {"#s": "status", "#shard": STATUS_SHARD, "#e": "error"},
        "ExpressionAttributeValues": {
            ":received": {"S": str(WebhookStatus.RECEIVED)},
            ":shard": status_shard(WebhookStatus.RECEIVED, webhook_id),
            ":zero": {"N": "0"},
            ":now": now,
        },
    }


def shard_keys(status: str) -> list[dict[str, str]]:
    """The index's partition key values of ``status``, shard 0 first."""
    return [{"S": f"{status}#{k}"} for k in range(STATUS_SHARDS)]


def received_at(item: Item) -> float:
    return float(item["receivedAt"]["N"])


def merged(streams: Iterable[Iterator[Item]], *, newest_first: bool) -> Iterator[Item]:
    """Index entries of several shards, each stream in index order, as one stream in order."""
    key: Callable[[Item], float] = (lambda i: -received_at(i)) if newest_first else received_at
    return heapq.merge(*streams, key=key)


# Paging across the shards (the operator CLI's ``webhooks list --status``) ----------------
#
# A cursor holds one position per shard: null (from its start), false (read to its end), or
# [receivedAt, webhookId] of the last entry listed from it. Each page reads up to ``limit``
# entries of every shard not at its end, from its position, and keeps the newest ``limit``.


def sharded_page(
    dynamodb: Any, requests: list[dict[str, Any]], limit: int, cursor: str | None
) -> tuple[list[Item], str | None]:
    """Up to ``limit`` index entries, newest first across ``requests`` (one Query per shard,
    its key under ``:shard``), and the cursor after them (None when every shard is read)."""
    positions = decode_positions(cursor, len(requests)) if cursor else [None] * len(requests)
    read: list[list[Item]] = []
    more: list[bool] = []
    for request, position in zip(requests, positions, strict=True):
        items, has_more = (
            ([], False) if position is False else _read(dynamodb, request, position, limit)
        )
        read.append(items)
        more.append(has_more)
    page = list(itertools.islice(merged((iter(r) for r in read), newest_first=True), limit))
    listed = {id(item) for item in page}
    after: list[Any] = []
    for position, items, has_more in zip(positions, read, more, strict=True):
        taken = [item for item in items if id(item) in listed]
        if taken:
            last = taken[-1]
            position = [last["receivedAt"]["N"], last["webhookId"]["S"]]
        after.append(False if len(taken) == len(items) and not has_more else position)
    done = all(p is False for p in after)
    return page, None if done else encode_positions(after)


def _read(
    dynamodb: Any, request: dict[str, Any], position: Any, limit: int
) -> tuple[list[Item], bool]:
    """Up to ``limit`` entries of one shard after ``position``; whether more follow."""
    request = dict(request)
    if position is not None:
        request["ExclusiveStartKey"] = {
            "webhookId": {"S": position[1]},
            STATUS_SHARD: request["ExpressionAttributeValues"][":shard"],
            "receivedAt": {"N": position[0]},
        }
    items: list[Item] = []
    while True:
        request["Limit"] = limit - len(items)
        with aws_call("reading a page"):
            answer = dynamodb.query(**request)
        items += answer["Items"]
        last = answer.get("LastEvaluatedKey")
        if last is None or len(items) >= limit:
            return items, last is not None
        request["ExclusiveStartKey"] = last


def encode_positions(positions: list[Any]) -> str:
    return "s" + base64.urlsafe_b64encode(json.dumps(positions).encode()).decode()


def decode_positions(cursor: str, shards: int) -> list[Any]:
    """ValueError unless ``cursor`` is one ``encode_positions`` made for ``shards`` shards."""
    if not cursor.startswith("s"):
        raise ValueError(cursor)
    positions = json.loads(base64.urlsafe_b64decode(cursor[1:].encode()))
    if not isinstance(positions, list) or len(positions) != shards:
        raise ValueError(cursor)
    for position in positions:
        if position is None or position is False:
            continue
        if not (isinstance(position, list) and len(position) == 2):
            raise ValueError(cursor)
        if not all(isinstance(p, str) for p in position):
            raise ValueError(cursor)
        float(position[0])
    return positions
