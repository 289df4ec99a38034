"""Payment ledger state machine.

A payment's record is a pure function of the *set* of canonical events applied to it: the
events are kept (deduplicated by key) and the derived fields are recomputed from them in a
canonical order (provider event time, then state precedence, then key). The final record
therefore never depends on arrival order, and a duplicate changes nothing.

Invariants of every derived record:
- all amounts are >= 0;
- ``amount_refunded`` <= ``amount_captured``: a refund that would exceed what was captured is
  kept in the history and flagged, but not counted;
- a payment that succeeded never goes back to a pending, failed or canceled status.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from payhook.core.payment import PaymentEvent, PaymentEventKind

K = PaymentEventKind


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
    K.PENDING: 0,
    K.REQUIRES_ACTION: 1,
    K.FAILED: 2,
    K.AUTHORIZED: 3,
    K.CANCELED: 4,
    K.SUCCEEDED: 5,
    K.REFUNDED: 6,
    K.DISPUTE_OPENED: 7,
    K.DISPUTE_WON: 8,
    K.DISPUTE_LOST: 9,
}
_OPEN_STATES = {
    K.PENDING: PaymentStatus.PENDING,
    K.REQUIRES_ACTION: PaymentStatus.REQUIRES_ACTION,
    K.AUTHORIZED: PaymentStatus.AUTHORIZED,
    K.FAILED: PaymentStatus.FAILED,
}
_LIFECYCLE = {*_OPEN_STATES, K.SUCCEEDED, K.CANCELED}
_DISPUTE_KINDS = {K.DISPUTE_OPENED, K.DISPUTE_WON, K.DISPUTE_LOST}


def _order(event: PaymentEvent) -> tuple[float, int, str]:
    return (event.occurred_at, _PRECEDENCE[event.kind], event.key)


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


@dataclass(slots=True)
class _Amounts:
    authorized: int = 0
    captured: int = 0
    amount: int = 0
    flags: list[str] = field(default_factory=list)


def derive(provider: str, payment_id: str, events: list[PaymentEvent]) -> PaymentRecord:
    """Compute a payment record from its events, whatever their order or repetition."""
    unique = sorted({e.key: e for e in events}.values(), key=_order)
    if not unique:
        raise ValueError("a payment record needs at least one event")
    flags: list[str] = []
    currency = _currency(unique, flags)
    amounts = _lifecycle_amounts(unique)
    refunded = _refunded(unique, amounts.captured, flags)
    open_disputes, won, lost, disputed = _disputes(unique)
    base = _base_status(unique)
    if open_disputes:
        status = PaymentStatus.DISPUTED
    elif lost:
        status = PaymentStatus.DISPUTE_LOST
    elif won:
        status = PaymentStatus.DISPUTE_WON
    elif refunded and refunded >= amounts.captured:
        status = PaymentStatus.REFUNDED
    elif refunded:
        status = PaymentStatus.PARTIALLY_REFUNDED
    else:
        status = base
    return PaymentRecord(
        provider=provider,
        payment_id=payment_id,
        status=status,
        currency=currency,
        amount=amounts.captured or amounts.amount,
        amount_authorized=amounts.authorized,
        amount_captured=amounts.captured,
        amount_refunded=refunded,
        amount_disputed=disputed,
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
    if any(e.key == event.key for e in record.events):
        return record, False
    new = derive(record.provider, record.payment_id, [*record.events, event])
    return replace(new, version=record.version), True


def _currency(events: list[PaymentEvent], flags: list[str]) -> str | None:
    currencies = [e.currency for e in events if e.currency]
    for event in events:
        if event.currency and currencies and event.currency != currencies[0]:
            flags.append(f"currency_mismatch:{event.event_id}")
    return currencies[0] if currencies else None


def _lifecycle_amounts(events: list[PaymentEvent]) -> _Amounts:
    result = _Amounts()
    for event in events:
        if event.captured_hint is not None:
            result.captured = max(result.captured, event.captured_hint)
        if event.amount is None or event.kind not in _LIFECYCLE:
            continue
        result.amount = max(result.amount, event.amount)
        if event.kind in (K.AUTHORIZED, K.SUCCEEDED):
            result.authorized = max(result.authorized, event.amount)
        if event.kind is K.SUCCEEDED:
            result.captured = max(result.captured, event.amount)
    result.authorized = max(result.authorized, result.captured)
    return result


def _refunded(events: list[PaymentEvent], captured: int, flags: list[str]) -> int:
    """Refunds count once per refund id; none may take the total above the captured amount."""
    per_refund: dict[str, int] = {}
    cumulative = 0
    for event in events:
        if event.kind is not K.REFUNDED:
            continue
        if event.refunded_total is not None:
            cumulative = max(cumulative, event.refunded_total)
        if event.amount is not None:
            refund_key = event.refund_id or event.key
            per_refund[refund_key] = max(per_refund.get(refund_key, 0), event.amount)
    total = 0
    for refund_key, amount in sorted(per_refund.items()):
        if total + amount > captured:
            flags.append(f"refund_exceeds_captured:{refund_key}")
            continue
        total += amount
    if cumulative > captured:
        flags.append("refunded_total_exceeds_captured")
    elif cumulative > total:
        total = cumulative
    return total


def _disputes(events: list[PaymentEvent]) -> tuple[int, int, int, int]:
    outcome: dict[str, PaymentEventKind] = {}
    amount: dict[str, int] = {}
    for event in events:
        if event.kind not in _DISPUTE_KINDS:
            continue
        dispute = event.dispute_id or event.payment_id
        # A closed outcome outranks "opened" whatever the timestamps say; lost outranks won.
        if _PRECEDENCE[event.kind] >= _PRECEDENCE[outcome.get(dispute, K.DISPUTE_OPENED)]:
            outcome[dispute] = event.kind
        if event.amount is not None:
            amount[dispute] = max(amount.get(dispute, 0), event.amount)
    open_ = sum(1 for k in outcome.values() if k is K.DISPUTE_OPENED)
    won = sum(1 for k in outcome.values() if k is K.DISPUTE_WON)
    lost = sum(1 for k in outcome.values() if k is K.DISPUTE_LOST)
    disputed = sum(v for d, v in amount.items() if outcome[d] is not K.DISPUTE_WON)
    return open_, won, lost, disputed


def _base_status(events: list[PaymentEvent]) -> PaymentStatus:
    kinds = {e.kind for e in events}
    if K.SUCCEEDED in kinds or kinds & ({K.REFUNDED} | _DISPUTE_KINDS):
        return PaymentStatus.SUCCEEDED
    if K.CANCELED in kinds:
        return PaymentStatus.CANCELED
    latest = [e for e in events if e.kind in _OPEN_STATES]
    return _OPEN_STATES[latest[-1].kind] if latest else PaymentStatus.PENDING
