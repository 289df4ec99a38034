"""Tamper-evident audit chain.

Each entry carries the SHA-256 of the previous entry, and its own hash covers its sequence
number, time, subject and data. Editing an entry breaks its hash; inserting or deleting one
breaks the sequence or the link; cutting entries off the end disagrees with the stored head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class Change:
    """A change of a webhook or payment, as the change feed reports it.

    ``data`` holds ids, statuses and integer amounts only: never a payload or a secret, and no
    floats (every backend must round-trip it exactly).
    """

    entity: str  # "webhook" | "payment"
    entity_key: str
    action: str  # "insert" | "modify" | "remove"
    data: dict[str, Any]
    source_id: str = ""  # position in the feed, for idempotent appends


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    recorded_at: str
    entity: str
    entity_key: str
    action: str
    data: dict[str, Any]
    source_id: str
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        # Built by hand: dataclasses.asdict deep-copies ``data``, and this runs per change.
        return {
            "seq": self.seq,
            "recorded_at": self.recorded_at,
            "entity": self.entity,
            "entity_key": self.entity_key,
            "action": self.action,
            "data": self.data,
            "source_id": self.source_id,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEntry:
        return cls(**{**data, "seq": int(data["seq"])})


def _digest(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def compute_hash(entry: AuditEntry) -> str:
    fields = entry.to_dict()
    del fields["hash"]
    return _digest(fields)


def next_entry(previous: AuditEntry | None, change: Change, recorded_at: str) -> AuditEntry:
    """The entry that follows ``previous`` (None for the first entry of the chain)."""
    fields: dict[str, Any] = {
        "seq": previous.seq + 1 if previous else 1,
        "recorded_at": recorded_at,
        "entity": change.entity,
        "entity_key": change.entity_key,
        "action": change.action,
        "data": change.data,
        "source_id": change.source_id,
        "prev_hash": previous.hash if previous else GENESIS_HASH,
    }
    return AuditEntry(**fields, hash=_digest(fields))


def extend(
    previous: AuditEntry | None, changes: Iterable[Change], recorded_at: str
) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for change in changes:
        previous = next_entry(previous, change, recorded_at)
        entries.append(previous)
    return entries


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "headHash": self.head_hash,
            "firstBadSeq": self.first_bad_seq,
            "reason": self.reason,
        }


def verify_chain(entries: Iterable[AuditEntry], head: tuple[int, str] | None = None) -> ChainReport:
    """Check every link. ``head`` is the (seq, hash) the store recorded as the last entry."""
    prev_hash, expected_seq, count = GENESIS_HASH, 1, 0
    for entry in entries:
        if entry.seq != expected_seq:
            return ChainReport(False, count, prev_hash, expected_seq, "sequence gap or insertion")
        if entry.prev_hash != prev_hash:
            return ChainReport(False, count, prev_hash, entry.seq, "broken link to previous entry")
        if compute_hash(entry) != entry.hash:
            return ChainReport(False, count, prev_hash, entry.seq, "entry content was altered")
        prev_hash, expected_seq, count = entry.hash, expected_seq + 1, count + 1
    if head is not None and head != (count, prev_hash if count else GENESIS_HASH):
        return ChainReport(
            False, count, prev_hash, count + 1, "chain does not reach the recorded head"
        )
    return ChainReport(True, count, prev_hash)
