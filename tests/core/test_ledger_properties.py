"""Properties of the ledger over generated, realistic payment histories.

A history follows a payment's lifecycle (pending / requires_action, then authorized, succeeded,
failed or canceled), then refunds (by refund id, some reported twice, some cumulative totals,
some too large) and disputes with outcomes, with provider timestamps that are often equal and
sometimes skewed. The ledger must derive the same record from any arrival order with any
duplicates, and keep its amount invariants on every intermediate record.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payhook.core.ledger import PaymentRecord, PaymentStatus, apply
from payhook.core.payment import PaymentEvent, PaymentEventKind

K = PaymentEventKind
S = PaymentStatus
T0 = 1_700_000_000.0
EXAMPLES = 500
# No deadline: a timing threshold would make the run depend on the machine's load.
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_OPEN = {S.PENDING, S.REQUIRES_ACTION, S.AUTHORIZED, S.FAILED, S.CANCELED}
_DISPUTED = {S.DISPUTED, S.DISPUTE_WON, S.DISPUTE_LOST}


class _History:
    """Builds one payment's events; every event gets a fresh provider event id."""

    def __init__(self, draw: st.DrawFn, currency: str) -> None:
        self.draw = draw
        self.currency = currency
        self.now = T0
        self.ids = itertools.count()
        self.events: list[PaymentEvent] = []

    def tick(self) -> float:
        # Zero steps are frequent: events stamped in the same second must still order well.
        self.now += self.draw(st.sampled_from([0, 0, 1, 2, 60]))
        return self.now

    def add(self, kind: PaymentEventKind, at: float | None = None, **fields: object) -> None:
        fields.setdefault("currency", self.currency)
        self.events.append(
            PaymentEvent(
                provider="stripe",
                payment_id="pi_1",
                kind=kind,
                event_id=f"evt_{next(self.ids)}",
                event_type=str(kind),
                occurred_at=self.tick() if at is None else at,
                **fields,  # type: ignore[arg-type]
            )
        )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[PaymentEvent], str]:
    """A realistic history and how its lifecycle ended."""
    h = _History(draw, draw(st.sampled_from(["USD", "EUR", "JPY"])))
    amount = draw(st.integers(1, 1_000_000))
    openings = st.sampled_from([K.PENDING, K.REQUIRES_ACTION])
    for kind in draw(st.lists(openings, min_size=1, max_size=3)):
        h.add(kind, amount=amount)
    # Success is drawn most often: refunds and disputes follow only from it.
    ending = draw(st.sampled_from(["succeeded"] * 3 + ["failed", "canceled", "authorized"]))
    if ending == "failed":
        h.add(K.FAILED, amount=amount)
    elif ending == "authorized":
        h.add(K.AUTHORIZED, amount=amount)
    elif ending == "canceled":
        if draw(st.booleans()):
            h.add(K.AUTHORIZED, amount=amount)
        h.add(K.CANCELED, amount=amount)
        if draw(st.booleans()):  # Stripe's charge.refunded for a released authorization
            h.add(K.REFUNDED, refunded_total=amount, captured_hint=0)
    else:
        _success(draw, h, amount)
    return h.events, ending


def _success(draw: st.DrawFn, h: _History, amount: int) -> None:
    if draw(st.booleans()):
        h.add(K.FAILED, amount=amount)  # a first attempt fails, a retry succeeds
    if draw(st.booleans()):
        h.add(K.AUTHORIZED, amount=amount)
    captured = draw(st.integers(1, amount))
    h.add(K.SUCCEEDED, amount=captured)
    if draw(st.booleans()):  # late noise: a stale failure or cancellation after success
        h.add(draw(st.sampled_from([K.FAILED, K.CANCELED])), amount=amount)
    refunded = 0
    for index in range(draw(st.integers(0, 4))):
        refund_amount = draw(st.integers(1, captured))  # several may add up to too much
        refunded += refund_amount
        for _ in range(draw(st.integers(1, 2))):  # refund.created, then refund.updated
            h.add(K.REFUNDED, refund_id=f"re_{index}", amount=refund_amount)
        if draw(st.booleans()):  # charge.refunded with the cumulative total
            h.add(K.REFUNDED, refunded_total=min(refunded, captured), captured_hint=captured)
    for index in range(draw(st.integers(0, 2))):
        dispute = f"dp_{index}"
        opened_at = h.tick()
        h.add(K.DISPUTE_OPENED, at=opened_at, dispute_id=dispute, amount=captured)
        outcome = draw(st.sampled_from([None, K.DISPUTE_WON, K.DISPUTE_LOST]))
        if outcome is not None:
            skew = draw(st.sampled_from([0, 0, -1, 5]))  # sometimes stamped before the opening
            h.add(outcome, at=opened_at + skew, dispute_id=dispute, amount=captured)


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[PaymentEvent], list[PaymentEvent]]:
    """(in-order history, the same events in any order with any duplicates)."""
    events, _ = draw(histories())
    repeats = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    return events, draw(st.permutations(events + repeats))


def fold(
    events: list[PaymentEvent], each: Callable[[PaymentRecord], None] | None = None
) -> PaymentRecord:
    record: PaymentRecord | None = None
    for event in events:
        record, _ = apply(record, event)
        if each is not None:
            each(record)
    assert record is not None
    return record


def check_invariants(record: PaymentRecord) -> None:
    amounts = (record.amount, record.amount_authorized, record.amount_captured)
    assert min(*amounts, record.amount_refunded, record.amount_disputed) >= 0
    assert record.amount_refunded <= record.amount_captured <= record.amount_authorized
    if record.amount_captured > 0:
        assert record.status not in _OPEN
    if record.amount_refunded > 0 and record.status not in _DISPUTED:
        full = record.amount_refunded == record.amount_captured
        assert record.status is (S.REFUNDED if full else S.PARTIALLY_REFUNDED)


@PROPERTY
@given(arrivals())
def test_any_arrival_order_with_duplicates_derives_the_in_order_record(
    case: tuple[list[PaymentEvent], list[PaymentEvent]],
) -> None:
    in_order, shuffled = case
    expected = fold(in_order)
    actual = fold(shuffled)
    assert actual.state() == expected.state()
    assert actual.events == expected.events


@PROPERTY
@given(arrivals())
def test_amount_invariants_hold_on_every_intermediate_record(
    case: tuple[list[PaymentEvent], list[PaymentEvent]],
) -> None:
    in_order, shuffled = case
    fold(in_order, check_invariants)
    fold(shuffled, check_invariants)


@PROPERTY
@given(arrivals())
def test_applying_an_event_already_applied_reports_no_change(
    case: tuple[list[PaymentEvent], list[PaymentEvent]],
) -> None:
    _, shuffled = case
    seen: list[PaymentEvent] = []
    record: PaymentRecord | None = None
    for event in shuffled:
        record, _ = apply(record, event)
        seen.append(event)
        for old in seen:
            again, changed = apply(record, old)
            assert not changed
            assert again is record


@PROPERTY
@given(histories())
def test_the_final_status_follows_the_lifecycle(case: tuple[list[PaymentEvent], str]) -> None:
    events, ending = case
    record = fold(events)
    kinds = {e.kind for e in events}
    if ending != "succeeded":
        assert record.status is S(ending)
        assert record.amount_captured == record.amount_refunded == 0
        return
    outcomes = {e.dispute_id: e.kind for e in events if e.kind in (K.DISPUTE_WON, K.DISPUTE_LOST)}
    disputes = {e.dispute_id for e in events if e.kind is K.DISPUTE_OPENED}
    if disputes - set(outcomes):
        assert record.status is S.DISPUTED
    elif K.DISPUTE_LOST in outcomes.values():
        assert record.status is S.DISPUTE_LOST
    elif outcomes:
        assert record.status is S.DISPUTE_WON
    elif K.REFUNDED in kinds:
        assert record.status in (S.PARTIALLY_REFUNDED, S.REFUNDED)
    else:
        assert record.status is S.SUCCEEDED


@PROPERTY
@given(histories(), st.data())
def test_refused_events_change_no_amount_and_are_flagged(
    case: tuple[list[PaymentEvent], str], data: st.DataObject
) -> None:
    events, _ = case
    base = fold(events)
    foreign = "GBP"
    noise: list[tuple[str, dict[str, Any]]] = data.draw(
        st.lists(
            st.sampled_from(
                [
                    ("refund", {"refund_id": "re_x", "amount": -100}),
                    ("refund", {"refund_id": "re_y", "amount": 1, "currency": foreign}),
                    ("refund", {"refunded_total": -5}),
                    ("dispute", {"dispute_id": "dp_x", "amount": 10, "currency": foreign}),
                    ("payment", {"amount": -1}),
                ]
            ),
            min_size=1,
            max_size=3,
            unique_by=lambda item: repr(item),
        )
    )
    kinds = {"refund": K.REFUNDED, "dispute": K.DISPUTE_OPENED, "payment": K.SUCCEEDED}
    refused = [
        PaymentEvent(
            provider="stripe",
            payment_id="pi_1",
            kind=kinds[what],
            event_id=f"evt_noise_{index}",
            event_type="noise",
            occurred_at=data.draw(st.sampled_from([e.occurred_at for e in events])),
            **{"currency": base.currency, **fields},
        )
        for index, (what, fields) in enumerate(noise)
    ]
    mixed = data.draw(st.permutations(events + refused))
    record = fold(mixed)
    assert record.state()[:-1] == base.state()[:-1]
    flagged = {flag.partition(":")[2] for flag in record.flags if flag not in base.flags}
    assert flagged == {e.event_id for e in refused}
