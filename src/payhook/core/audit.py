"""Tamper-evident audit chain, authenticated with a key held outside the database.

Each entry carries the SHA-256 of the previous entry, and its own hash covers its sequence
number, time, subject and data. The last entry of every append carries a MAC over its
sequence number and hash (``head_message``), made with a ``ChainKey``; that MAC vouches for
the whole chain up to it. Verification checks every link and every MAC present, and requires
the last entry to carry a valid one. Entries written before the chain was keyed carry no MAC;
the first authenticated head after them covers them.

Threat model, in short: someone who can write the database but does not hold the key cannot
edit, insert or delete an entry, or add one at the end, without ``verify`` failing. It does
NOT stop them from cutting the chain back to an earlier authenticated head, or restoring the
whole database to an earlier state: compare with a head anchored elsewhere (``audit head``,
then ``verify --expect-head``) for that. Whoever holds the key (or, on AWS, may call
GenerateMac with it) can rewrite history; the chain records what changed, not who changed it
or whether the change was legitimate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from payhook.core.chain_key import ChainKey

GENESIS_HASH = "0" * 64
#: Domain separation: a MAC made for the audit chain authenticates nothing else made with the
#: same key (and the version lets the message format change without ambiguity).
MAC_DOMAIN = b"payhook/audit-head/v1\n"


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
    #: The MAC of ``head_message(seq, hash)``: on the last entry of each append, else None.
    #: Not covered by ``hash`` (it is made from it).
    mac: str | None = None

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
            "mac": self.mac,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEntry:
        return cls(**{**data, "seq": int(data["seq"])})


def _digest(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def compute_hash(entry: AuditEntry) -> str:
    fields = entry.to_dict()
    del fields["hash"], fields["mac"]
    return _digest(fields)


def head_message(seq: int, entry_hash: str) -> bytes:
    """What a MAC authenticates: the position and hash of a head of the chain."""
    return MAC_DOMAIN + f"{seq}:{entry_hash}".encode()


def authenticate(entry: AuditEntry, key: ChainKey) -> AuditEntry:
    """``entry`` carrying the MAC of its sequence number and hash."""
    return dataclasses.replace(entry, mac=key.mac(head_message(entry.seq, entry.hash)))


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
    previous: AuditEntry | None, changes: Iterable[Change], recorded_at: str, key: ChainKey
) -> list[AuditEntry]:
    """The entries chaining ``changes`` onto ``previous``; the last one carries a MAC (one
    ``key.mac`` call per append, whatever its size)."""
    entries: list[AuditEntry] = []
    for change in changes:
        previous = next_entry(previous, change, recorded_at)
        entries.append(previous)
    if entries:
        entries[-1] = authenticate(entries[-1], key)
    return entries


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None
    head_mac: str | None = None
    macs_verified: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "headHash": self.head_hash,
            "headMac": self.head_mac,
            "macsVerified": self.macs_verified,
            "firstBadSeq": self.first_bad_seq,
            "reason": self.reason,
        }


def verify_chain(
    entries: Iterable[AuditEntry],
    key: ChainKey,
    head: tuple[int, str] | None = None,
    *,
    anchor: tuple[int, str] | None = None,
) -> ChainReport:
    """Check every link and every MAC; the last entry must carry a valid MAC.

    ``head`` is the (seq, hash) the store recorded as its last entry (it is not authenticated:
    it catches accidents, not attackers). ``anchor`` is a (seq, hash) kept outside the
    database (``payhook audit head``): the chain must still pass through it.
    """
    prev_hash, count, macs = GENESIS_HASH, 0, 0
    last: AuditEntry | None = None

    def broken(seq: int, reason: str) -> ChainReport:
        return ChainReport(False, count, prev_hash, seq, reason, macs_verified=macs)

    for entry in entries:
        if entry.seq != count + 1:
            return broken(count + 1, "sequence gap or insertion")
        if entry.prev_hash != prev_hash:
            return broken(entry.seq, "broken link to previous entry")
        if compute_hash(entry) != entry.hash:
            return broken(entry.seq, "entry content was altered")
        if entry.mac is not None:
            if not key.verify(head_message(entry.seq, entry.hash), entry.mac):
                return broken(entry.seq, "MAC does not match: rewritten without the key")
            macs += 1
        if anchor is not None and entry.seq == anchor[0] and entry.hash != anchor[1]:
            return broken(entry.seq, "chain no longer passes through the anchored head")
        prev_hash, count, last = entry.hash, count + 1, entry
    if head is not None and head != (count, prev_hash):
        return broken(count + 1, "chain does not reach the recorded head")
    if last is not None and last.mac is None:
        return broken(
            last.seq,
            "last entry carries no MAC: entries were added without the key, or the chain"
            " was cut back, or it was written before a key was set and nothing since",
        )
    if anchor is not None and anchor[0] > count:
        return broken(count + 1, f"chain ends before the anchored head (entry {anchor[0]})")
    return ChainReport(
        True, count, prev_hash, head_mac=last.mac if last else None, macs_verified=macs
    )


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """A stored payment as verification reads it: its columns and its stored record."""

    provider: str
    payment_id: str
    status: str
    currency: str | None
    amount: int
    amount_refunded: int
    version: int
    record: dict[str, Any]

    @property
    def entity_key(self) -> str:
        """The payment's subject in the audit chain."""
        return f"{self.provider}/{self.payment_id}"

    def audited(self) -> dict[str, Any]:
        """The columns an audit entry of a payment records, named as there."""
        return {
            "status": self.status,
            "currency": self.currency,
            "amount": self.amount,
            "amountRefunded": self.amount_refunded,
            "version": self.version,
        }
