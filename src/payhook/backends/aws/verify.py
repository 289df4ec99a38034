"""``audit verify`` and ``audit repair`` on a deployed stack.

Verify checks every shard's chain (links, KMS MACs, recorded head), the checkpoint chain and
that every shard still passes through each head a checkpoint names, every payment row
against its events and its trail, and every webhook and payment item against its trail
(``trails.py``: no change lost). Repair appends a late entry for each gapped subject, then a
checkpoint; it appends only to chains that verify.

Reads are consistent Scans of the three tables: this runs from an operator's shell, never
in a function of the stack. While the audit function is behind, changes still in the stream
read as gaps: verify again once its IteratorAge is low, and repair only then.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from payhook.backends.aws.audit import DynamoAuditLog, DynamoPaymentRows
from payhook.backends.aws.errors import aws_call
from payhook.backends.aws.items import Item
from payhook.backends.aws.shards import ShardedAuditLog, late_change, shard_of
from payhook.backends.aws.trails import Gap, Trails
from payhook.core.audit import AuditEntry, ChainReport, Change, PaymentRow, extend, verify_chain
from payhook.core.chain_key import ChainKey
from payhook.core.clock import Clock, iso_utc, system_clock
from payhook.errors import ConcurrencyError, PayhookError

MAX_REPAIR_RETRIES = 8


class RowCheck(Protocol):
    """Why a payment row cannot be trusted, or "" (``service.audit.payment_problem``)."""

    def __call__(self, row: PaymentRow, recorded: Change | None, *, check_trail: bool) -> str: ...


@dataclass(frozen=True, slots=True)
class StackAuditReport:
    #: (chain name, its report), one per shard, then the checkpoint chain when sharded.
    chains: tuple[tuple[str, ChainReport], ...]
    checkpoint_problems: tuple[str, ...] = ()
    payments: int = 0
    webhooks: int = 0
    #: (subject, reason): what a repair cannot fix (a row that is not what the ledger made).
    problems: tuple[tuple[str, str], ...] = ()
    gaps: tuple[Gap, ...] = ()

    @property
    def chains_ok(self) -> bool:
        return all(report.ok for _, report in self.chains) and not self.checkpoint_problems

    @property
    def ok(self) -> bool:
        return self.chains_ok and not self.problems and not self.gaps

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chainOk": self.chains_ok,
            "chains": [{"chain": name, **report.to_dict()} for name, report in self.chains],
            "checkpointProblems": list(self.checkpoint_problems),
            "paymentsChecked": self.payments,
            "webhooksChecked": self.webhooks,
            "problems": [{"subject": s, "reason": r} for s, r in self.problems],
            "gaps": [
                {"entity": g.entity, "key": g.entity_key, "lost": list(g.lost)} for g in self.gaps
            ],
        }


def verify_stack(
    audit: ShardedAuditLog,
    key: ChainKey,
    *,
    webhooks_table: str,
    payments_table: str,
    payment_problem: RowCheck,
    anchor: tuple[int, str] | None = None,
) -> StackAuditReport:
    """Everything ``audit verify`` checks; ``anchor`` is a head ``audit head`` printed (of
    the checkpoint chain when sharded, else of the one chain). ``payment_problem`` checks a
    row against the ledger (a use case: the caller passes it in)."""
    trails = Trails()
    chains: list[tuple[str, ChainReport]] = []
    hashes: list[dict[int, str]] = []
    if audit.sharded:
        # A stack that had one chain before it was sharded: that chain comes first in every
        # subject's trail (shards only ever follow it).
        legacy = DynamoAuditLog(audit.dynamodb, table=audit.table)
        report = verify_chain(trails.tracking(legacy.entries()), key, legacy.recorded_head())
        if report.entries or not report.ok:
            chains.append((legacy.chain, report))
    for shard in audit.shards:
        seen: dict[int, str] = {}
        entries = trails.tracking(_remember(shard.entries(), seen))
        shard_anchor = None if audit.sharded else anchor
        chains.append(
            (shard.chain, verify_chain(entries, key, shard.recorded_head(), anchor=shard_anchor))
        )
        hashes.append(seen)
    checkpoint_problems: list[str] = []
    last_checkpoint = audit.checkpoints.head()
    if not audit.sharded and last_checkpoint is not None:
        heads = last_checkpoint.data.get("heads")
        checkpoint_problems.append(
            f"the stack's chain has {len(heads) if isinstance(heads, list) else 'several'}"
            " shards: set [aws] audit_shards to the stack's audit_shards"
        )
    if audit.sharded:
        checkpoints: list[AuditEntry] = []
        log = audit.checkpoints
        report = verify_chain(
            _remember(log.entries(), {}, checkpoints), key, log.recorded_head(), anchor=anchor
        )
        chains.append((log.chain, report))
        checkpoint_problems = _checkpoint_problems(checkpoints, hashes)
    if not all(report.ok for _, report in chains):
        # A broken chain was not read to its end: its trails say nothing reliable.
        return StackAuditReport(tuple(chains), tuple(checkpoint_problems))
    problems: list[tuple[str, str]] = []
    gaps: list[Gap] = []
    payments = 0
    for row in DynamoPaymentRows(audit.dynamodb, table=payments_table).payment_rows():
        payments += 1
        problems += [(f"payment {row.entity_key}", w) for w in trails.wrong(row.entity_key)]
        gap = trails.payment_gap(row)
        latest = trails.payment_latest(row.entity_key)
        recorded = None
        if latest is not None:
            recorded = Change(latest.entity, latest.entity_key, latest.action, latest.data)
        reason = payment_problem(row, recorded, check_trail=gap is None)
        if reason:
            problems.append((f"payment {row.entity_key}", reason))
        elif gap is not None:
            gaps.append(gap)
    webhooks = 0
    for item in _webhook_items(audit.dynamodb, webhooks_table):
        webhooks += 1
        if (gap := trails.webhook_gap(item)) is not None:
            gaps.append(gap)
    return StackAuditReport(
        tuple(chains), tuple(checkpoint_problems), payments, webhooks, tuple(problems), tuple(gaps)
    )


def repair_gaps(
    audit: ShardedAuditLog,
    key: ChainKey,
    gaps: tuple[Gap, ...],
    *,
    clock: Clock = system_clock,
    sleep: Callable[[float], None] = time.sleep,
) -> list[AuditEntry]:
    """Append a late entry for each gap, on its subject's shard; then a checkpoint."""
    appended: list[AuditEntry] = []
    groups: dict[int, list[Change]] = {}
    for gap in gaps:
        change = late_change(gap.entity, gap.entity_key, gap.current, gap.lost)
        groups.setdefault(shard_of(gap.entity_key, len(audit.shards)), []).append(change)
    for shard, changes in sorted(groups.items()):
        appended += _append(audit.shards[shard], changes, key, clock, sleep)
    if audit.sharded and appended:
        audit.write_checkpoint(key, clock)
    return appended


def _append(
    log: DynamoAuditLog,
    changes: list[Change],
    key: ChainKey,
    clock: Clock,
    sleep: Callable[[float], None],
) -> list[AuditEntry]:
    for attempt in range(MAX_REPAIR_RETRIES):
        head = log.head()
        entries = extend(head, changes, iso_utc(clock()), key)
        try:
            log.append(entries, expected_head=head)
            return entries
        except ConcurrencyError:  # the audit function appended meanwhile
            sleep(random.uniform(0, 0.05 * 2**attempt))
    raise PayhookError(f"the audit chain {log.chain} kept moving; run `payhook audit repair` again")


def _remember(
    entries: Iterator[AuditEntry], seen: dict[int, str], kept: list[AuditEntry] | None = None
) -> Iterator[AuditEntry]:
    for entry in entries:
        seen[entry.seq] = entry.hash
        if kept is not None:
            kept.append(entry)
        yield entry


def _checkpoint_problems(checkpoints: list[AuditEntry], hashes: list[dict[int, str]]) -> list[str]:
    problems: list[str] = []
    for checkpoint in checkpoints:
        heads = checkpoint.data.get("heads")
        if not isinstance(heads, list) or len(heads) != len(hashes):
            problems.append(
                f"checkpoint {checkpoint.seq} names {len(heads) if isinstance(heads, list) else 0}"
                f" shards, the stack has {len(hashes)}"
            )
            continue
        for shard, head in enumerate(heads):
            if head is None:
                continue
            seq, digest = head
            if hashes[shard].get(seq) != digest:
                problems.append(
                    f"checkpoint {checkpoint.seq}: shard {shard} no longer passes through"
                    f" its entry {seq}"
                )
    return problems


def _webhook_items(dynamodb: Any, table: str) -> Iterator[Item]:
    scan: dict[str, Any] = {
        "TableName": table,
        "ConsistentRead": True,
        "ProjectionExpression": "webhookId, provider, eventId, eventType, #s",
        "ExpressionAttributeNames": {"#s": "status"},
    }
    while True:
        with aws_call("reading webhooks"):
            page = dynamodb.scan(**scan)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
