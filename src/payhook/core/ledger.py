"""Payment ledger state machine.

A payment's record is a pure function of the *set* of canonical events applied to it: the
events are kept (one per key) and every derived field is recomputed from them in a canonical
order (provider event time, then state precedence, then key). Arrival order and repetition
therefore never matter. Two events with the same key are one fact; should they differ, the
one that sorts first by (time, content) is kept, so even that choice is order-free.

Invariants of every derived record:
- ``0 <= amount_refunded <= amount_captured <= amount_authorized`` and ``amount_disputed >= 0``;
- the same set of events gives the same record, and ``apply`` of a duplicate changes nothing;
- a refused event is kept in ``events`` and named in ``flags`` but has no effect on any
  derived field. Refused are: a negative amount (``negative_amount:<event>``), a currency other
  than the payment's (``currency_mismatch:<event>``), a refund that would take the refunded
  total above the captured amount (``refund_exceeds_captured:<refund>``) and a cumulative
  refunded total above it (``refunded_total_exceeds_captured:<event>``). A refund seen before
  its capture is refused until the capture arrives, and counted from then on;
- a payment with a succeeded event or captured money never shows a pending, requires_action,
  authorized, failed or canceled status; ``canceled`` outranks the other open statuses.

Rules:
- currency: that of the first lifecycle event stating one, else of the first event stating one;
- refunds count once per refund id (its largest reported amount), in the order they were first
  reported; a cumulative ``refunded_total`` is a lower bound, so the total is the larger of it
  and the sum of the accepted refunds;
- a dispute's outcome is lost > won > opened whatever the timestamps (outcomes are final);
  ``amount_disputed`` sums the disputes not won;
- status: an open dispute, else a lost one, else a won one, else refunded / partially refunded,
  else succeeded, else canceled, else the latest pending/requires_action/authorized/failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from payhook.core.payment import PaymentEvent, PaymentEventKind


class PaymentStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"


# Tie-break between events with the same provider time: later in the lifecycle sorts later.
_PRECEDENCE: dict[PaymentEventKind, int] = {
    PaymentEventKind.PENDING: 0,
    PaymentEventKind.REQUIRES_ACTION: 1,
    PaymentEventKind.FAILED: 2,
    PaymentEventKind.AUTHORIZED: 3,
    PaymentEventKind.CANCELED: 4,
    PaymentEventKind.SUCCEEDED: 5,
    PaymentEventKind.REFUNDED: 6,
    PaymentEventKind.DISPUTE_OPENED: 7,
    PaymentEventKind.DISPUTE_WON: 8,
    PaymentEventKind.DISPUTE_LOST: 9,
}
_OPEN_STATES = {
    PaymentEventKind.PENDING: PaymentStatus.PENDING,
    PaymentEventKind.REQUIRES_ACTION: PaymentStatus.REQUIRES_ACTION,
    PaymentEventKind.AUTHORIZED: PaymentStatus.AUTHORIZED,
    PaymentEventKind.FAILED: PaymentStatus.FAILED,
}
_LIFECYCLE = {*_OPEN_STATES, PaymentEventKind.SUCCEEDED, PaymentEventKind.CANCELED}
_DISPUTE_KINDS = {
    PaymentEventKind.DISPUTE_OPENED,
    PaymentEventKind.DISPUTE_WON,
    PaymentEventKind.DISPUTE_LOST,
}
_AMOUNT_FIELDS = ("amount", "refunded_total", "captured_hint")


def _order(event: PaymentEvent) -> tuple[float, int, str]:
    return (event.occurred_at, _PRECEDENCE[event.kind], event.key)


def _content(event: PaymentEvent) -> tuple[float, str]:
    return (event.occurred_at, json.dumps(event.to_dict(), sort_keys=True))


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    provider: str
    payment_id: str
    status: PaymentStatus
    currency: str | None
    amount: int
    amount_authorized: int
    amount_captured: int
    amount_refunded: int
    amount_disputed: int
    created_at: float
    updated_at: float
    events: tuple[PaymentEvent, ...]
    flags: tuple[str, ...] = ()
    version: int = 0

    def summary(self) -> dict[str, Any]:
        """The JSON shape the CLI prints and the canonical event carries."""
        return {
            "provider": self.provider,
            "paymentId": self.payment_id,
            "status": str(self.status),
            "amount": self.amount,
            "currency": self.currency,
            "amountAuthorized": self.amount_authorized,
            "amountCaptured": self.amount_captured,
            "amountRefunded": self.amount_refunded,
            "amountDisputed": self.amount_disputed,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "flags": list(self.flags),
            "version": self.version,
        }

    def state(self) -> tuple[object, ...]:
        """The derived fields: two records with equal state are the same ledger row."""
        return (
            self.status,
            self.currency,
            self.amount,
            self.amount_authorized,
            self.amount_captured,
            self.amount_refunded,
            self.amount_disputed,
            self.flags,
        )

    def to_dict(self) -> dict[str, Any]:
        data = self.summary()
        data["events"] = [event.to_dict() for event in self.events]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaymentRecord:
        events = [PaymentEvent.from_dict(e) for e in data["events"]]
        record = derive(data["provider"], data["paymentId"], events)
        return replace(record, version=int(data.get("version", 0)))


@dataclass(frozen=True, slots=True)
class _Disputes:
    open: int = 0
    won: int = 0
    lost: int = 0
    amount: int = 0


def derive(provider: str, payment_id: str, events: list[PaymentEvent]) -> PaymentRecord:
    """Compute a payment record from its events, whatever their order or repetition."""
    unique = _unique(events)
    if not unique:
        raise ValueError("a payment record needs at least one event")
    flags: list[str] = []
    valid = [e for e in unique if not _negative(e, flags)]
    currency = _currency(valid)
    accepted = [e for e in valid if _same_currency(e, currency, flags)]
    amount, authorized, captured = _lifecycle_amounts(accepted)
    refunded = _refunded(accepted, captured, flags)
    disputes = _disputes(accepted)
    if disputes.open:
        status = PaymentStatus.DISPUTED
    elif disputes.lost:
        status = PaymentStatus.DISPUTE_LOST
    elif disputes.won:
        status = PaymentStatus.DISPUTE_WON
    elif refunded and refunded >= captured:
        status = PaymentStatus.REFUNDED
    elif refunded:
        status = PaymentStatus.PARTIALLY_REFUNDED
    else:
        status = _base_status(accepted, captured)
    return PaymentRecord(
        provider=provider,
        payment_id=payment_id,
        status=status,
        currency=currency,
        amount=captured or amount,
        amount_authorized=authorized,
        amount_captured=captured,
        amount_refunded=refunded,
        amount_disputed=disputes.amount,
        created_at=unique[0].occurred_at,
        updated_at=unique[-1].occurred_at,
        events=tuple(unique),
        flags=tuple(sorted(set(flags))),
    )


def apply(record: PaymentRecord | None, event: PaymentEvent) -> tuple[PaymentRecord, bool]:
    """Apply one event. Returns the new record and whether the ledger row changed.

    A duplicate (same key) returns the record unchanged. The returned record keeps the
    version of the one passed in; stores bump it when they write.
    """
    if record is None:
        return derive(event.provider, event.payment_id, [event]), True
    if (event.provider, event.payment_id) != (record.provider, record.payment_id):
        raise ValueError("the event belongs to another payment")
    if event in record.events:
        return record, False
    new = derive(record.provider, record.payment_id, [*record.events, event])
    if new.events == record.events:  # same key as a kept event, and it lost the tie
        return record, False
    return replace(new, version=record.version), True


def _unique(events: list[PaymentEvent]) -> list[PaymentEvent]:
    by_key: dict[str, PaymentEvent] = {}
    for event in events:
        kept = by_key.get(event.key)
        if kept is None or _content(event) < _content(kept):
            by_key[event.key] = event
    return sorted(by_key.values(), key=_order)


def _negative(event: PaymentEvent, flags: list[str]) -> bool:
    if any((getattr(event, name) or 0) < 0 for name in _AMOUNT_FIELDS):
        flags.append(f"negative_amount:{event.event_id}")
        return True
    return False


def _currency(events: list[PaymentEvent]) -> str | None:
    lifecycle = [e.currency for e in events if e.currency and e.kind in _LIFECYCLE]
    stated = lifecycle or [e.currency for e in events if e.currency]
    return stated[0].upper() if stated else None


def _same_currency(event: PaymentEvent, currency: str | None, flags: list[str]) -> bool:
    if event.currency and event.currency.upper() != currency:
        flags.append(f"currency_mismatch:{event.event_id}")
        return False
    return True


def _lifecycle_amounts(events: list[PaymentEvent]) -> tuple[int, int, int]:
    """(payment amount, authorized, captured) from lifecycle events and captured hints."""
    amount = authorized = captured = 0
    for event in events:
        if event.captured_hint is not None:
            captured = max(captured, event.captured_hint)
        if event.amount is None or event.kind not in _LIFECYCLE:
            continue
        amount = max(amount, event.amount)
        if event.kind in (PaymentEventKind.AUTHORIZED, PaymentEventKind.SUCCEEDED):
            authorized = max(authorized, event.amount)
        if event.kind is PaymentEventKind.SUCCEEDED:
            captured = max(captured, event.amount)
    return amount, max(authorized, captured), captured


def _refunded(events: list[PaymentEvent], captured: int, flags: list[str]) -> int:
    """Refunds count once per refund id; none may take the total above the captured amount."""
    per_refund: dict[str, int] = {}  # insertion order: the order refunds were first reported
    cumulative = 0
    for event in events:
        if event.kind is not PaymentEventKind.REFUNDED:
            continue
        if event.refunded_total is not None:
            if event.refunded_total > captured:
                flags.append(f"refunded_total_exceeds_captured:{event.event_id}")
            else:
                cumulative = max(cumulative, event.refunded_total)
        if event.amount is not None:
            refund_key = event.refund_id or event.key
            per_refund[refund_key] = max(per_refund.get(refund_key, 0), event.amount)
    total = 0
    for refund_key, amount in per_refund.items():
        if total + amount > captured:
            flags.append(f"refund_exceeds_captured:{refund_key}")
            continue
        total += amount
    return max(total, cumulative)


def _disputes(events: list[PaymentEvent]) -> _Disputes:
    outcome: dict[str, PaymentEventKind] = {}
    amount: dict[str, int] = {}
    for event in events:
        if event.kind not in _DISPUTE_KINDS:
            continue
        dispute = event.dispute_id or event.payment_id
        # A closed outcome outranks "opened" whatever the timestamps say; lost outranks won.
        if (
            _PRECEDENCE[event.kind]
            >= _PRECEDENCE[outcome.get(dispute, PaymentEventKind.DISPUTE_OPENED)]
        ):
            outcome[dispute] = event.kind
        if event.amount is not None:
            amount[dispute] = max(amount.get(dispute, 0), event.amount)
    kinds = list(outcome.values())
    return _Disputes(
        open=kinds.count(PaymentEventKind.DISPUTE_OPENED),
        won=kinds.count(PaymentEventKind.DISPUTE_WON),
        lost=kinds.count(PaymentEventKind.DISPUTE_LOST),
        amount=sum(v for d, v in amount.items() if outcome[d] is not PaymentEventKind.DISPUTE_WON),
    )


def _base_status(events: list[PaymentEvent], captured: int) -> PaymentStatus:
    kinds = {e.kind for e in events}
    # Only evidence of captured money means success: a refund or dispute event alone does not
    # (Stripe reports a released authorization as a refund of an uncaptured charge).
    if PaymentEventKind.SUCCEEDED in kinds or captured > 0:
        return PaymentStatus.SUCCEEDED
    if PaymentEventKind.CANCELED in kinds:
        return PaymentStatus.CANCELED
    latest = [e for e in events if e.kind in _OPEN_STATES]
    return _OPEN_STATES[latest[-1].kind] if latest else PaymentStatus.PENDING
