"""Audit: append hash-chained, authenticated entries; verify the chain and the payment rows."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from payhook.core.audit import (
    AuditEntry,
    ChainReport,
    Change,
    PaymentRow,
    extend,
    verify_chain,
)
from payhook.core.chain_key import ChainKey
from payhook.core.clock import Clock, iso_utc, system_clock
from payhook.core.ports import AuditLog, ChangeFeed

log = logging.getLogger("payhook.audit")

#: Changes chained per drain: one MAC and one write each, so the more per write the less
#: the chain costs per change; a few thousand keep one write's transaction short.
DRAIN_BATCH = 2000


def drain(
    feed: ChangeFeed, key: ChainKey, *, limit: int = DRAIN_BATCH, clock: Clock = system_clock
) -> int:
    """Chain up to ``limit`` of the feed's pending changes onto its audit log, MAC the new
    head, and consume them, in one atomic write; returns how many (0: nothing pending).
    ConcurrencyError when another writer moved the head meanwhile (nothing was written)."""
    changes = feed.pending(limit)
    if not changes:
        return 0
    head = feed.head()
    feed.chain(changes, extend(head, changes, iso_utc(clock()), key), head)
    return len(changes)


def drain_or_wait(
    feed: ChangeFeed, key: ChainKey, stop: threading.Event, *, clock: Clock = system_clock
) -> int:
    """``drain`` once; a failure is logged, waited out for a second (or until ``stop``) and
    counts as nothing drained."""
    try:
        return drain(feed, key, limit=DRAIN_BATCH, clock=clock)
    except Exception:
        log.exception("audit drain failed; retrying")
        stop.wait(1.0)
        return 0


def run_drain(
    feed: ChangeFeed,
    key: ChainKey,
    stop: threading.Event,
    *,
    poll_seconds: float,
    clock: Clock = system_clock,
) -> None:
    """The audit worker: full batches back to back; after a short one (caught up) it looks
    again ``poll_seconds`` later, so that under load each write chains many changes rather
    than the few that arrived since the last. Returns once ``stop`` is set and the feed is
    drained."""
    while True:
        drained = drain_or_wait(feed, key, stop, clock=clock)
        if drained == DRAIN_BATCH:
            continue
        if stop.is_set() and not drained:
            return
        stop.wait(poll_seconds)


def record_changes(
    log: AuditLog, changes: Sequence[Change], key: ChainKey, clock: Clock = system_clock
) -> list[AuditEntry]:
    """Chain ``changes`` onto the log's head, MAC the new head, append in one atomic write."""
    if not changes:
        return []
    head = log.head()
    entries = extend(head, changes, iso_utc(clock()), key)
    log.append(entries, expected_head=head)
    return entries


class PaymentRows(Protocol):
    """What verification reads besides the chain: the payment rows, and the payment changes
    the change feed holds that are not chained yet (none where the feed is a stream)."""

    def payment_rows(self) -> Iterable[PaymentRow]: ...

    def pending_payment_changes(self) -> Iterable[Change]: ...


@dataclass(frozen=True, slots=True)
class PaymentProblem:
    payment: str  # "provider/payment id"
    reason: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    chain: ChainReport
    payments: int = 0
    problems: tuple[PaymentProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.chain.to_dict(),
            "ok": self.ok,
            "chainOk": self.chain.ok,
            "paymentsChecked": self.payments,
            "paymentProblems": [{"payment": p.payment, "reason": p.reason} for p in self.problems],
        }


def verify_log(
    log: AuditLog,
    key: ChainKey,
    payments: PaymentRows | None = None,
    *,
    anchor: tuple[int, str] | None = None,
) -> AuditReport:
    """Verify the chain (links, MACs, authenticated head, ``anchor``) and, given
    ``payments``, that every payment row equals what the ledger derives from its events and
    what its latest audit entry (or pending change) records, and that each payment's recorded
    versions increase (the ledger bumps the version of every write it makes)."""
    latest: dict[str, Change] = {}
    problems: list[PaymentProblem] = []

    def observe(change: Change, where: str) -> None:
        previous = latest.get(change.entity_key)
        version, before = change.data.get("version"), previous and previous.data.get("version")
        if isinstance(version, int) and isinstance(before, int) and version <= before:
            problems.append(
                PaymentProblem(
                    change.entity_key,
                    f"{where} records version {version} after version {before}:"
                    " a change the ledger did not make",
                )
            )
        latest[change.entity_key] = change

    def tracking(entries: Iterator[AuditEntry]) -> Iterator[AuditEntry]:
        for entry in entries:
            if entry.entity == "payment" and payments is not None:
                change = Change(entry.entity, entry.entity_key, entry.action, entry.data)
                observe(change, f"audit entry {entry.seq}")
            yield entry

    chain = verify_chain(tracking(log.entries()), key, log.recorded_head(), anchor=anchor)
    if payments is None:
        return AuditReport(chain)
    for change in payments.pending_payment_changes():
        observe(change, "a pending change")
    seen: set[str] = set()
    for row in payments.payment_rows():
        seen.add(row.entity_key)
        # A broken chain was not read to its end: only the row's own consistency is known.
        reason = payment_problem(row, latest.get(row.entity_key), check_trail=chain.ok)
        if reason:
            problems.append(PaymentProblem(row.entity_key, reason))
    if chain.ok:
        for entity_key, change in latest.items():
            if entity_key not in seen and change.action != "remove":
                problems.append(PaymentProblem(entity_key, "audited, but its row is gone"))
    return AuditReport(chain, len(seen), tuple(problems))


def payment_problem(row: PaymentRow, recorded: Change | None, *, check_trail: bool = True) -> str:
    """Why ``row`` cannot be trusted, or "" when it matches its events and its audit trail."""
    # Imported here: the audit Lambda appends and never verifies; the ledger stays out of its
    # cold start.
    from payhook.core.ledger import derive
    from payhook.core.payment import PaymentEvent

    try:
        events = [PaymentEvent.from_dict(e) for e in row.record["events"]]
        derived = derive(row.provider, row.payment_id, events)
    except (KeyError, TypeError, ValueError) as exc:
        return f"its record cannot be read ({type(exc).__name__})"
    expected = {
        "status": str(derived.status),
        "currency": derived.currency,
        "amount": derived.amount,
        "amountRefunded": derived.amount_refunded,
        "version": row.record.get("version", row.version),
    }
    if differences := _differences(row.audited(), expected, "record"):
        return f"row does not match the ledger its record's events derive: {differences}"
    if not check_trail:
        return ""
    if recorded is None:
        return "no audit entry records it"
    if recorded.action == "remove":
        return "the audit trail records it as removed"
    trail = {name: recorded.data.get(name) for name in expected}
    if differences := _differences(row.audited(), trail, "audit"):
        return f"row does not match its latest audit entry: {differences}"
    return ""


def _differences(row: Mapping[str, Any], other: Mapping[str, Any], other_name: str) -> str:
    return "; ".join(
        f"{name} row {row[name]!r}, {other_name} {other[name]!r}"
        for name in row
        if row[name] != other[name]
    )
