"""The AWS ``AuditLog``: entries under one chain (``main``, or a shard's: ``shards.py``), its
head in item (head chain, 0).

An append is ONE TransactWriteItems: it puts the entries (each only if absent), a marker per
change-feed position (``source#<source id>``, only if absent) and moves the head on condition
that it is still the head the entries were chained onto. A concurrent writer, or a stream
record chained before, cancels the whole append.

The last entry of each append carries a MAC made by KMS (``KmsChainKey``: an HMAC_256 key,
GenerateMac to append, VerifyMac to verify); the key material never leaves KMS, so a
principal that may write the table but not call GenerateMac cannot forge a head.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payhook.backends.aws.errors import (
    TRANSACTION_CANCELED,
    aws_call,
    cancellation_codes,
    error_code,
    unavailable,
)
from payhook.backends.aws.items import Item, batch_get, integer, n, s
from payhook.core.audit import AuditEntry, Change, PaymentRow
from payhook.errors import ConcurrencyError

MAIN_CHAIN = "main"
HEAD_CHAIN = "head"
SOURCE_PREFIX = "source#"
# TransactWriteItems takes 100 items: the head plus an entry and a marker per change.
MAX_ENTRIES_PER_APPEND = 49
MAC_ALGORITHM = "HMAC_SHA_256"
_INVALID_MAC = "KMSInvalidMacException"


class KmsChainKey:
    """``ChainKey`` over a KMS HMAC key: a MAC is KMS's, in hex. ``mac`` needs
    kms:GenerateMac (the audit function has only that), ``verify`` kms:VerifyMac."""

    def __init__(self, kms: Any, *, key_id: str) -> None:
        self.kms = kms
        self.key_id = key_id

    def mac(self, message: bytes) -> str:
        with aws_call("authenticating the audit head"):
            answer = self.kms.generate_mac(
                KeyId=self.key_id, Message=message, MacAlgorithm=MAC_ALGORITHM
            )
        return bytes(answer["Mac"]).hex()

    def verify(self, message: bytes, mac: str) -> bool:
        try:
            raw = bytes.fromhex(mac)
        except (TypeError, ValueError):
            return False
        if not raw:
            return False
        try:
            answer = self.kms.verify_mac(
                KeyId=self.key_id, Message=message, MacAlgorithm=MAC_ALGORITHM, Mac=raw
            )
        except ClientError as exc:
            if error_code(exc) == _INVALID_MAC:
                return False
            raise unavailable("verifying an audit MAC", exc) from exc
        except BotoCoreError as exc:
            raise unavailable("verifying an audit MAC", exc) from exc
        return bool(answer.get("MacValid"))


def _entry_item(entry: AuditEntry, chain: str) -> Item:
    item = {
        "chain": s(chain),
        "seq": n(entry.seq),
        "recordedAt": s(entry.recorded_at),
        "entity": s(entry.entity),
        "entityKey": s(entry.entity_key),
        "action": s(entry.action),
        "data": s(json.dumps(entry.data, sort_keys=True, separators=(",", ":"))),
        "sourceId": s(entry.source_id),
        "prevHash": s(entry.prev_hash),
        "hash": s(entry.hash),
    }
    if entry.mac is not None:
        item["mac"] = s(entry.mac)
    return item


def _entry(item: Item) -> AuditEntry:
    return AuditEntry(
        seq=integer(item["seq"]),
        recorded_at=item["recordedAt"]["S"],
        entity=item["entity"]["S"],
        entity_key=item["entityKey"]["S"],
        action=item["action"]["S"],
        data=json.loads(item["data"]["S"]),
        source_id=item["sourceId"]["S"],
        prev_hash=item["prevHash"]["S"],
        hash=item["hash"]["S"],
        mac=item["mac"]["S"] if "mac" in item else None,
    )


class DynamoAuditLog:
    def __init__(
        self, dynamodb: Any, *, table: str, chain: str = MAIN_CHAIN, head_chain: str = HEAD_CHAIN
    ) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.chain = chain
        self.head_chain = head_chain

    def head(self) -> AuditEntry | None:
        with aws_call("reading the audit head"):
            items = self.dynamodb.query(
                TableName=self.table,
                KeyConditionExpression="chain = :main",
                ExpressionAttributeValues={":main": s(self.chain)},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )["Items"]
        return _entry(items[0]) if items else None

    def recorded_head(self) -> tuple[int, str] | None:
        with aws_call("reading the audit head"):
            item = self.dynamodb.get_item(
                TableName=self.table,
                Key={"chain": s(self.head_chain), "seq": n(0)},
                ConsistentRead=True,
            ).get("Item")
        return (integer(item["lastSeq"]), item["hash"]["S"]) if item else None

    def append(self, entries: Sequence[AuditEntry], expected_head: AuditEntry | None) -> None:
        if not entries:
            return
        if len(entries) > MAX_ENTRIES_PER_APPEND:
            raise ValueError(
                f"got {len(entries)} entries, expected at most {MAX_ENTRIES_PER_APPEND}"
            )
        items: list[dict[str, Any]] = []
        for entry in entries:
            items.append(self._put(_entry_item(entry, self.chain), "attribute_not_exists(seq)"))
            if entry.source_id:
                marker = {
                    "chain": s(SOURCE_PREFIX + entry.source_id),
                    "seq": n(0),
                    "auditSeq": n(entry.seq),
                }
                items.append(self._put(marker, "attribute_not_exists(seq)"))
        items.append(self._move_head(entries[-1], expected_head))
        try:
            self.dynamodb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) == TRANSACTION_CANCELED and {
                "ConditionalCheckFailed",
                "TransactionConflict",
            } & set(cancellation_codes(exc)):
                raise ConcurrencyError("the audit head moved or a change was chained") from exc
            raise unavailable("appending audit entries", exc) from exc
        except BotoCoreError as exc:
            raise unavailable("appending audit entries", exc) from exc

    def _put(self, item: Item, condition: str, **extra: Any) -> dict[str, Any]:
        put = {"TableName": self.table, "Item": item, "ConditionExpression": condition}
        return {"Put": {**put, **extra}}

    def _move_head(self, last: AuditEntry, expected: AuditEntry | None) -> dict[str, Any]:
        head = {
            "chain": s(self.head_chain),
            "seq": n(0),
            "lastSeq": n(last.seq),
            "hash": s(last.hash),
        }
        if expected is None:
            return self._put(head, "attribute_not_exists(seq)")
        return self._put(
            head,
            "lastSeq = :seq AND #h = :hash",
            ExpressionAttributeNames={"#h": "hash"},
            ExpressionAttributeValues={":seq": n(expected.seq), ":hash": s(expected.hash)},
        )

    def entries(self) -> Iterator[AuditEntry]:
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "chain = :main",
            "ExpressionAttributeValues": {":main": s(self.chain)},
            "ConsistentRead": True,
        }
        while True:
            with aws_call("reading audit entries"):
                page = self.dynamodb.query(**query)
            yield from (_entry(item) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def chained_sources(self, source_ids: Iterable[str]) -> set[str]:
        """Which change-feed positions already have an entry (stream retries skip them)."""
        pending = sorted(set(source_ids))
        items = batch_get(
            self.dynamodb,
            self.table,
            [{"chain": s(SOURCE_PREFIX + sid), "seq": n(0)} for sid in pending],
            "reading audit markers",
            ConsistentRead=True,
            ProjectionExpression="chain",
        )
        found = {item["chain"]["S"][len(SOURCE_PREFIX) :] for item in items}
        return found


class DynamoPaymentRows:
    """``PaymentRows`` over the payments table, for verification (a consistent scan). The
    change feed is the table's stream: nothing pending is readable, so a row written moments
    ago may be reported until the audit function has chained it."""

    def __init__(self, dynamodb: Any, *, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def payment_rows(self) -> Iterator[PaymentRow]:
        scan: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            with aws_call("reading payments"):
                page = self.dynamodb.scan(**scan)
            yield from (_payment_row(item) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def pending_payment_changes(self) -> Iterator[Change]:
        return iter(())


def _payment_row(item: Item) -> PaymentRow:
    try:
        record = json.loads(item["record"]["S"])
    except (KeyError, ValueError):
        record = {}
    currency = item.get("currency", {}).get("S")
    return PaymentRow(
        provider=item["provider"]["S"],
        payment_id=item["paymentId"]["S"],
        status=item.get("status", {}).get("S", ""),
        currency=currency,
        amount=integer(item["amount"]) if "amount" in item else -1,
        amount_refunded=integer(item["amountRefunded"]) if "amountRefunded" in item else -1,
        version=integer(item["version"]) if "version" in item else -1,
        record=record if isinstance(record, dict) else {},
    )
