"""The sharded audit chain: one chain per hash bucket of the subject, and checkpoints.

With one chain, every append of both tables is a conditional transaction on ONE head item:
every concurrent audit invocation races for it, and DynamoDB serializes them on one key
(about 1,000 writes/s for an item, fewer for transactions). With N shards a subject's
changes always go to the chain ``shard#<k>`` (k = SHA-256 of the subject mod N), whose head
is ``head#<k>``: appends of different shards never conflict, and the audit rate grows with N.
Each shard is a complete keyed chain (``core/audit.py``) and verifies on its own.

A checkpoint entry, on its own keyed chain ``checkpoint``, commits to every shard's head
(seq and hash) at one moment; verification requires every shard to still pass through the
heads each checkpoint names, so cutting a shard back below a checkpoint is detected, and
anchoring the checkpoint chain's head (``audit head``) anchors every shard up to it.

The shard count is fixed when a stack is deployed (``audit_shards``): a subject's entries
must stay in one chain for its trail to have an order. One shard is the single chain
``main``/``head`` of earlier stacks.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from payhook.backends.aws.audit import HEAD_CHAIN, MAIN_CHAIN, DynamoAuditLog
from payhook.core.audit import AuditEntry, Change, extend
from payhook.core.chain_key import ChainKey
from payhook.core.clock import Clock, iso_utc, system_clock
from payhook.errors import ConcurrencyError

log = logging.getLogger("payhook.aws.audit")

MAX_SHARDS = 64
CHECKPOINT_CHAIN = "checkpoint"
CHECKPOINT_HEAD = "head#checkpoint"
CHECKPOINT_ENTITY = "checkpoint"
#: At most one checkpoint per this many seconds from each audit execution environment.
CHECKPOINT_INTERVAL_SECONDS = 60.0


def shard_of(entity_key: str, shards: int) -> int:
    """The shard of a subject: stable across processes (not Python's salted ``hash``)."""
    if shards == 1:
        return 0
    digest = hashlib.sha256(entity_key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def chain_names(shard: int, shards: int) -> tuple[str, str]:
    """(entries chain, head chain) of ``shard``."""
    if shards == 1:
        return MAIN_CHAIN, HEAD_CHAIN
    return f"shard#{shard}", f"head#{shard}"


class ShardedAuditLog:
    """The shards of one audit table, and its checkpoint chain."""

    def __init__(self, dynamodb: Any, *, table: str, shards: int = 1) -> None:
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"shards: got {shards}, expected 1 to {MAX_SHARDS}")
        self.dynamodb = dynamodb
        self.table = table
        self.shards = [
            DynamoAuditLog(dynamodb, table=table, chain=c, head_chain=h)
            for c, h in (chain_names(k, shards) for k in range(shards))
        ]
        self.checkpoints = DynamoAuditLog(
            dynamodb, table=table, chain=CHECKPOINT_CHAIN, head_chain=CHECKPOINT_HEAD
        )

    @property
    def sharded(self) -> bool:
        return len(self.shards) > 1

    def shard(self, entity_key: str) -> DynamoAuditLog:
        return self.shards[shard_of(entity_key, len(self.shards))]

    def by_shard(self, changes: Iterable[Change]) -> dict[int, list[Change]]:
        groups: dict[int, list[Change]] = {}
        for change in changes:
            groups.setdefault(shard_of(change.entity_key, len(self.shards)), []).append(change)
        return groups

    def chained_sources(self, source_ids: Iterable[str]) -> set[str]:
        """Markers are per table, not per shard: any shard's log reads them."""
        return self.shards[0].chained_sources(source_ids)

    def heads(self) -> list[tuple[int, str] | None]:
        return [shard.recorded_head() for shard in self.shards]

    def write_checkpoint(self, key: ChainKey, clock: Clock = system_clock) -> AuditEntry | None:
        """Append a checkpoint of every shard's head; None when another writer's checkpoint
        won the race (one is as good as the other), nothing changed since the last one, or
        the chain is not sharded (its one head is its checkpoint)."""
        if not self.sharded:
            return None
        heads = [list(h) if h else None for h in self.heads()]
        last = self.checkpoints.head()
        if last is not None and last.data.get("heads") == heads:
            return None
        change = Change(CHECKPOINT_ENTITY, "shards", "checkpoint", {"heads": heads})
        entries = extend(last, [change], iso_utc(clock()), key)
        try:
            self.checkpoints.append(entries, expected_head=last)
        except ConcurrencyError:
            return None
        return entries[-1]


class CheckpointTimer:
    """When an audit execution environment writes its next checkpoint."""

    def __init__(self, clock: Clock, interval_seconds: float = CHECKPOINT_INTERVAL_SECONDS):
        self.clock = clock
        self.interval_seconds = interval_seconds
        self.next_at = 0.0

    def due(self) -> bool:
        now = self.clock()
        if now < self.next_at:
            return False
        self.next_at = now + self.interval_seconds
        return True


def late_change(entity: str, entity_key: str, data: dict[str, Any], lost: Sequence[str]) -> Change:
    """An entry appended by ``audit repair`` for changes the stream lost (``trails.py``)."""
    return Change(entity, entity_key, "late", {**data, "late": True, "lost": list(lost)})
