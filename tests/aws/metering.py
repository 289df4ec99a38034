"""Count what the handlers ask of AWS, as AWS bills it: requests per API and DynamoDB capacity.

moto answers ``ReturnConsumedCapacity`` with a constant (1 unit, whatever the item), so the
capacity here is computed from item sizes by DynamoDB's documented rules:

- an item's size is the sum over its attributes of the name's UTF-8 length plus the value's
  size (strings: UTF-8 bytes; numbers: 1 byte per 2 significant digits, plus 1; binary: bytes;
  booleans and null: 1; lists and maps: 3 bytes plus their elements, 1 byte more each);
- a write costs 1 WRU per KB (rounded up) of the larger of the item before and after it, also
  when its condition fails; in a transaction, twice that;
- a read costs 1 RRU per 4 KB (rounded up) of the whole item, even when a projection returns
  less, and even when nothing is found; half that when eventually consistent; a query pays for
  the total size of the items it returns (here: no filter), at least one unit;
- a write that adds, changes or removes an item's key in a global secondary index costs 1 WRU
  per index entry written (keys-only entries are far below 1 KB): a key change is a delete and
  a put. Index writes are not transactional, so they are not doubled.

Before and after each write, an unmetered client reads the items the write touches.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

KB, READ_UNIT = 1024, 4096
#: Index name -> its key attributes, per table (infra/constructs/storage.py).
INDEX_KEYS = {
    "payhook-webhooks": {
        "byStatus": ("statusShard", "receivedAt"),
        "byUnsignedEventId": ("unsignedEventKey",),
    }
}
_WRITES = {"PutItem": "Item", "UpdateItem": "Key", "DeleteItem": "Key"}


def number_size(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits
    significant = len(digits) - next((i for i, d in enumerate(digits) if d), len(digits))
    return math.ceil(max(significant, 1) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in inner)
    raise ValueError(f"got attribute type {kind!r}, expected a DynamoDB type")


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(v) for name, v in (item or {}).items())


def write_units(before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    return max(1, math.ceil(max(item_size(before), item_size(after)) / KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT))
    return units if consistent else units / 2


class Meter:
    """Attach to clients; every request is counted under the current ``hop``."""

    def __init__(self, observer: Any) -> None:
        self.observer = observer  # an unmetered DynamoDB client
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (hop, service, operation)
        self.events: Counter[str] = Counter()  # EventBridge entries published, per hop
        self.wru: Counter[tuple[str, str]] = Counter()  # (hop, table or table/index)
        self.rru: Counter[tuple[str, str]] = Counter()
        self.current = "unattributed"
        self._keys: dict[str, list[str]] = {}

    @contextmanager
    def hop(self, name: str) -> Iterator[None]:
        previous, self.current = self.current, name
        try:
            yield
        finally:
            self.current = previous

    def attach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-parameter-build", self._before)
            client.meta.events.register("after-call", self._after)

    # hooks ----------------------------------------------------------------------------

    def _before(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        service = model.service_model.endpoint_prefix
        self.calls[(self.current, service, model.name)] += 1
        if service == "events" and model.name == "PutEvents":
            self.events[self.current] += len(params["Entries"])
        if service == "dynamodb":
            writes = self._targets(model.name, params)
            context["payhook_meter"] = (params, [(t, k, self._get(t, k)) for t, k, _x in writes])

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if "payhook_meter" not in context:
            return
        params, befores = context.pop("payhook_meter")
        failed = "Error" in parsed
        factor = 2 if model.name == "TransactWriteItems" else 1
        for table, key, before in befores:
            after = before if failed else self._get(table, key)
            self.wru[(self.current, table)] += factor * write_units(before, after)
            if not failed:
                for index, attributes in INDEX_KEYS.get(table, {}).items():
                    self.wru[(self.current, f"{table}/{index}")] += index_writes(
                        before, after, attributes
                    )
        self._reads(model.name, params, parsed)

    # what a call touches ---------------------------------------------------------------

    def _targets(self, operation: str, params: dict[str, Any]) -> list[tuple[str, Any, str]]:
        if operation in _WRITES:
            table = params["TableName"]
            return [(table, self._key(table, params[_WRITES[operation]]), operation)]
        if operation == "TransactWriteItems":
            found = []
            for entry in params["TransactItems"]:
                (kind, body), *_ = entry.items()
                key = body.get("Key") or self._key(body["TableName"], body["Item"])
                found.append((body["TableName"], self._key(body["TableName"], key), kind))
            return found
        return []

    def _reads(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        if operation == "GetItem":
            item = self._get(params["TableName"], params["Key"])
            units = read_units(item_size(item), bool(params.get("ConsistentRead")))
            self.rru[(self.current, params["TableName"])] += units
        elif operation == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                consistent = bool(request.get("ConsistentRead"))
                for key in request["Keys"]:
                    units = read_units(item_size(self._get(table, key)), consistent)
                    self.rru[(self.current, table)] += units
        elif operation == "Query" and "Error" not in parsed:
            size = sum(item_size(item) for item in parsed.get("Items", []))
            name = params["TableName"] + (
                f"/{params['IndexName']}" if "IndexName" in params else ""
            )
            self.rru[(self.current, name)] += read_units(size, bool(params.get("ConsistentRead")))

    def _key(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        if table not in self._keys:
            schema = self.observer.describe_table(TableName=table)["Table"]["KeySchema"]
            self._keys[table] = [k["AttributeName"] for k in schema]
        return {name: item[name] for name in self._keys[table]}

    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.observer.get_item(
            TableName=table, Key=key, ConsistentRead=True
        ).get("Item")
        return item


def index_writes(
    before: dict[str, Any] | None, after: dict[str, Any] | None, attributes: tuple[str, ...]
) -> int:
    def entry(item: dict[str, Any] | None) -> tuple[Any, ...] | None:
        if not item or any(a not in item for a in attributes):
            return None
        return tuple(str(item[a]) for a in attributes)

    old, new = entry(before), entry(after)
    if old == new:
        return 0
    return (old is not None) + (new is not None)
