"""The ledger state machine: one test per transition, per invariant and per refused event."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from payhook.core.ledger import PaymentRecord, PaymentStatus, apply, derive
from payhook.core.payment import PaymentEvent, PaymentEventKind

K = PaymentEventKind
S = PaymentStatus
T0 = 1_700_000_000.0


def ev(kind: PaymentEventKind, at: float, event_id: str, **fields: object) -> PaymentEvent:
    """One Stripe-like canonical event on payment pi_1, in USD unless told otherwise."""
    fields.setdefault("currency", "USD")
    return PaymentEvent(
        provider="stripe",
        payment_id="pi_1",
        kind=kind,
        event_id=event_id,
        event_type=str(kind),
        occurred_at=T0 + at,
        **fields,  # type: ignore[arg-type]
    )


def succeeded(at: float = 10, amount: int = 2000, event_id: str = "evt_ok") -> PaymentEvent:
    return ev(K.SUCCEEDED, at, event_id, amount=amount)


def refund(at: float, refund_id: str, amount: int, event_id: str | None = None) -> PaymentEvent:
    return ev(K.REFUNDED, at, event_id or f"evt_{refund_id}", refund_id=refund_id, amount=amount)


def fold(events: list[PaymentEvent]) -> PaymentRecord:
    record: PaymentRecord | None = None
    for event in events:
        record, _ = apply(record, event)
    assert record is not None
    return record


# transitions ---------------------------------------------------------------------------


def test_first_pending_event_creates_a_pending_record() -> None:
    record = fold([ev(K.PENDING, 0, "evt_1", amount=2000)])
    assert record.status is S.PENDING
    assert (record.amount, record.amount_authorized, record.amount_captured) == (2000, 0, 0)
    assert record.currency == "USD"


def test_requires_action_follows_pending() -> None:
    record = fold([ev(K.PENDING, 0, "evt_1"), ev(K.REQUIRES_ACTION, 1, "evt_2")])
    assert record.status is S.REQUIRES_ACTION


def test_authorization_records_the_authorized_amount_without_capture() -> None:
    record = fold([ev(K.PENDING, 0, "evt_1"), ev(K.AUTHORIZED, 1, "evt_2", amount=2000)])
    assert record.status is S.AUTHORIZED
    assert (record.amount_authorized, record.amount_captured) == (2000, 0)


def test_success_captures_the_amount() -> None:
    record = fold([ev(K.PENDING, 0, "evt_1", amount=2000), succeeded()])
    assert record.status is S.SUCCEEDED
    assert (record.amount, record.amount_authorized, record.amount_captured) == (2000, 2000, 2000)


def test_partial_capture_keeps_the_authorized_amount_and_reports_the_captured_one() -> None:
    record = fold([ev(K.AUTHORIZED, 1, "evt_a", amount=2000), succeeded(amount=1500)])
    assert (record.amount, record.amount_authorized, record.amount_captured) == (1500, 2000, 1500)


def test_a_failed_attempt_then_a_retry_that_succeeds_is_succeeded() -> None:
    assert fold([ev(K.FAILED, 1, "evt_f", amount=2000), succeeded(at=5)]).status is S.SUCCEEDED


def test_a_failure_reported_after_success_does_not_undo_it() -> None:
    record = fold([succeeded(at=5), ev(K.FAILED, 9, "evt_f", amount=2000)])
    assert record.status is S.SUCCEEDED
    assert record.amount_captured == 2000


def test_a_failure_is_not_final_a_later_authorization_wins() -> None:
    record = fold([ev(K.FAILED, 1, "evt_f"), ev(K.AUTHORIZED, 2, "evt_a", amount=2000)])
    assert record.status is S.AUTHORIZED


def test_a_later_failure_after_requires_action_is_failed() -> None:
    record = fold([ev(K.REQUIRES_ACTION, 1, "evt_r"), ev(K.FAILED, 2, "evt_f")])
    assert record.status is S.FAILED


def test_canceling_an_authorization_is_final_for_later_open_states() -> None:
    events = [
        ev(K.AUTHORIZED, 1, "evt_a", amount=2000),
        ev(K.CANCELED, 2, "evt_c"),
        ev(K.REQUIRES_ACTION, 3, "evt_r"),
    ]
    assert fold(events).status is S.CANCELED


def test_a_cancellation_reported_after_success_does_not_undo_it() -> None:
    assert fold([succeeded(at=5), ev(K.CANCELED, 9, "evt_c")]).status is S.SUCCEEDED


def test_a_partial_refund_is_partially_refunded() -> None:
    record = fold([succeeded(), refund(20, "re_1", 500)])
    assert record.status is S.PARTIALLY_REFUNDED
    assert record.amount_refunded == 500


def test_refunds_accumulate_up_to_a_full_refund() -> None:
    record = fold([succeeded(), refund(20, "re_1", 500), refund(30, "re_2", 1500)])
    assert record.status is S.REFUNDED
    assert record.amount_refunded == 2000


def test_the_same_refund_reported_by_two_events_counts_once() -> None:
    events = [
        succeeded(),
        refund(20, "re_1", 500, event_id="evt_refund_created"),
        refund(25, "re_1", 500, event_id="evt_refund_updated"),
    ]
    record = fold(events)
    assert record.amount_refunded == 500
    assert len(record.events) == 3  # both facts are kept; the refund counts once


def test_a_cumulative_refunded_total_combines_with_refunds_by_id() -> None:
    charge_refunded = ev(
        K.REFUNDED, 40, "evt_charge", refunded_total=1200, captured_hint=2000, amount=None
    )
    # the cumulative total (1200) covers more than the one refund seen by id (500)
    assert fold([succeeded(), refund(20, "re_1", 500), charge_refunded]).amount_refunded == 1200
    # refunds seen by id (500 + 900) add up to more than an older cumulative total (1200)
    record = fold([succeeded(), refund(20, "re_1", 500), charge_refunded, refund(50, "re_2", 900)])
    assert record.amount_refunded == 1400


def test_a_refund_event_revealing_the_capture_makes_the_payment_succeeded() -> None:
    charge_refunded = ev(K.REFUNDED, 40, "evt_charge", refunded_total=500, captured_hint=2000)
    record = fold([ev(K.PENDING, 0, "evt_p", amount=2000), charge_refunded])
    assert (record.status, record.amount_captured, record.amount_refunded) == (
        S.PARTIALLY_REFUNDED,
        2000,
        500,
    )


def test_a_refund_seen_before_its_capture_is_held_then_counted() -> None:
    early = fold([ev(K.PENDING, 0, "evt_p", amount=2000), refund(20, "re_1", 500)])
    assert early.amount_refunded == 0
    assert early.flags == ("refund_exceeds_captured:re_1",)
    later, changed = apply(early, succeeded(at=10))
    assert changed
    assert (later.status, later.amount_refunded, later.flags) == (S.PARTIALLY_REFUNDED, 500, ())


def test_an_opened_dispute_is_disputed_with_its_amount() -> None:
    record = fold([succeeded(), ev(K.DISPUTE_OPENED, 50, "evt_d", dispute_id="dp_1", amount=2000)])
    assert (record.status, record.amount_disputed) == (S.DISPUTED, 2000)


def test_a_won_dispute_releases_the_disputed_amount() -> None:
    events = [
        succeeded(),
        ev(K.DISPUTE_OPENED, 50, "evt_d", dispute_id="dp_1", amount=2000),
        ev(K.DISPUTE_WON, 60, "evt_w", dispute_id="dp_1", amount=2000),
    ]
    record = fold(events)
    assert (record.status, record.amount_disputed) == (S.DISPUTE_WON, 0)


def test_a_lost_dispute_keeps_the_disputed_amount() -> None:
    events = [
        succeeded(),
        ev(K.DISPUTE_OPENED, 50, "evt_d", dispute_id="dp_1", amount=2000),
        ev(K.DISPUTE_LOST, 60, "evt_l", dispute_id="dp_1", amount=2000),
    ]
    assert (fold(events).status, fold(events).amount_disputed) == (S.DISPUTE_LOST, 2000)


def test_a_dispute_outcome_stamped_before_its_opening_still_closes_it() -> None:
    events = [
        succeeded(),
        ev(K.DISPUTE_WON, 50, "evt_w", dispute_id="dp_1", amount=2000),
        ev(K.DISPUTE_OPENED, 60, "evt_d", dispute_id="dp_1", amount=2000),
    ]
    assert fold(events).status is S.DISPUTE_WON


def test_lost_outranks_won_for_the_same_dispute_whatever_the_times() -> None:
    won = ev(K.DISPUTE_WON, 70, "evt_w", dispute_id="dp_1", amount=2000)
    lost = ev(K.DISPUTE_LOST, 60, "evt_l", dispute_id="dp_1", amount=2000)
    assert fold([succeeded(), won, lost]).status is S.DISPUTE_LOST
    assert fold([succeeded(), lost, won]).status is S.DISPUTE_LOST


def test_one_open_dispute_among_closed_ones_keeps_the_payment_disputed() -> None:
    events = [
        succeeded(),
        ev(K.DISPUTE_OPENED, 50, "evt_d1", dispute_id="dp_1", amount=800),
        ev(K.DISPUTE_WON, 60, "evt_w1", dispute_id="dp_1", amount=800),
        ev(K.DISPUTE_OPENED, 70, "evt_d2", dispute_id="dp_2", amount=1200),
    ]
    record = fold(events)
    assert (record.status, record.amount_disputed) == (S.DISPUTED, 1200)


# ties and order ------------------------------------------------------------------------


def test_equal_timestamps_resolve_by_lifecycle_precedence() -> None:
    failed, authorized = ev(K.FAILED, 5, "evt_f"), ev(K.AUTHORIZED, 5, "evt_a", amount=2000)
    assert fold([authorized, failed]).status is S.AUTHORIZED
    assert fold([failed, authorized]).status is S.AUTHORIZED
    pending = ev(K.PENDING, 10, "evt_p")
    assert fold([succeeded(at=10), pending]).status is S.SUCCEEDED


def test_every_arrival_order_gives_the_same_record() -> None:
    events = [
        ev(K.PENDING, 0, "evt_p", amount=2000),
        ev(K.REQUIRES_ACTION, 1, "evt_r"),
        ev(K.FAILED, 1, "evt_f"),
        succeeded(at=3),
        refund(4, "re_1", 500),
        refund(4, "re_2", 1700),  # refused: 500 + 1700 > 2000, whatever the order
        ev(K.DISPUTE_OPENED, 5, "evt_d", dispute_id="dp_1", amount=1500),
    ]
    expected = derive("stripe", "pi_1", events)
    assert expected.flags == ("refund_exceeds_captured:re_2",)
    for order in itertools.permutations(events):
        record = fold(list(order))
        assert record.state() == expected.state()
        assert record.events == expected.events


def test_refunds_are_accepted_in_the_order_they_were_reported_not_by_id() -> None:
    record = fold([succeeded(), refund(30, "re_a", 1500), refund(20, "re_b", 1000)])
    assert record.amount_refunded == 1000
    assert record.flags == ("refund_exceeds_captured:re_a",)


def test_two_versions_of_one_fact_keep_the_same_one_whatever_the_order() -> None:
    early = ev(K.AUTHORIZED, 1, "evt_a", amount=2000)
    late = replace(early, occurred_at=early.occurred_at + 10)
    failed = ev(K.FAILED, 5, "evt_f")
    assert fold([early, late, failed]).state() == fold([late, failed, early]).state()
    assert fold([late, early]).events == (early,)


# duplicates and versions ---------------------------------------------------------------


def test_applying_a_duplicate_changes_nothing() -> None:
    record = fold([succeeded(), refund(20, "re_1", 500)])
    again, changed = apply(record, refund(20, "re_1", 500))
    assert not changed
    assert again is record


def test_apply_keeps_the_version_the_store_gave() -> None:
    record = replace(fold([succeeded()]), version=7)
    updated, changed = apply(record, refund(20, "re_1", 500))
    assert changed
    assert updated.version == 7


def test_an_event_of_another_payment_is_a_programming_error() -> None:
    other = replace(succeeded(), payment_id="pi_2")
    with pytest.raises(ValueError, match="another payment"):
        apply(fold([succeeded()]), other)


def test_a_record_needs_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        derive("stripe", "pi_1", [])


def test_a_record_survives_a_round_trip_through_its_dict() -> None:
    record = replace(
        fold([succeeded(), refund(20, "re_1", 500), refund(30, "re_2", 9000)]), version=3
    )
    restored = PaymentRecord.from_dict(record.to_dict())
    assert restored == record


# refused events ------------------------------------------------------------------------


def test_refuses_a_refund_above_the_captured_amount() -> None:
    record = fold([succeeded(), refund(20, "re_1", 1500), refund(30, "re_2", 600)])
    assert (record.status, record.amount_refunded) == (S.PARTIALLY_REFUNDED, 1500)
    assert record.flags == ("refund_exceeds_captured:re_2",)
    assert refund(30, "re_2", 600) in record.events


def test_refuses_a_cumulative_refunded_total_above_the_captured_amount() -> None:
    bogus = ev(K.REFUNDED, 40, "evt_charge", refunded_total=2500)
    record = fold([succeeded(), refund(20, "re_1", 500), bogus])
    assert record.amount_refunded == 500
    assert record.flags == ("refunded_total_exceeds_captured:evt_charge",)


def test_a_released_authorization_reported_as_a_refund_stays_canceled() -> None:
    # Stripe sends charge.refunded (amount_captured 0) when an uncaptured charge is released.
    released = ev(K.REFUNDED, 3, "evt_charge", refunded_total=2000, captured_hint=0)
    events = [ev(K.AUTHORIZED, 1, "evt_a", amount=2000), ev(K.CANCELED, 2, "evt_c"), released]
    record = fold(events)
    assert (record.status, record.amount_captured, record.amount_refunded) == (S.CANCELED, 0, 0)
    assert record.flags == ("refunded_total_exceeds_captured:evt_charge",)


@pytest.mark.parametrize("field", ["amount", "refunded_total", "captured_hint"])
def test_refuses_a_negative_amount(field: str) -> None:
    negative = ev(K.REFUNDED, 20, "evt_neg", refund_id="re_neg", **{field: -500})
    before = fold([succeeded()])
    record, changed = apply(before, negative)
    assert changed  # the fact is kept
    assert record.flags == ("negative_amount:evt_neg",)
    assert record.state()[:-1] == before.state()[:-1]  # everything but the flags


def test_refuses_a_negative_payment_amount() -> None:
    record = fold([ev(K.AUTHORIZED, 1, "evt_a", amount=-1), ev(K.PENDING, 0, "evt_p")])
    assert (record.status, record.amount, record.amount_authorized) == (S.PENDING, 0, 0)
    assert record.flags == ("negative_amount:evt_a",)


def test_refuses_an_event_in_another_currency() -> None:
    euro_refund = ev(K.REFUNDED, 20, "evt_eur", refund_id="re_1", amount=500, currency="EUR")
    record = fold([euro_refund, succeeded()])
    assert (record.currency, record.status, record.amount_refunded) == ("USD", S.SUCCEEDED, 0)
    assert record.flags == ("currency_mismatch:evt_eur",)


def test_the_payment_currency_comes_from_its_lifecycle_not_from_an_earlier_refund() -> None:
    euro_refund = ev(K.REFUNDED, 1, "evt_eur", refund_id="re_1", amount=500, currency="EUR")
    record = fold([ev(K.PENDING, 5, "evt_p", amount=2000), euro_refund])
    assert record.currency == "USD"
    assert record.flags == ("currency_mismatch:evt_eur",)


def test_a_dispute_outcome_in_another_currency_leaves_the_dispute_open() -> None:
    events = [
        succeeded(),
        ev(K.DISPUTE_OPENED, 50, "evt_d", dispute_id="dp_1", amount=2000),
        ev(K.DISPUTE_WON, 60, "evt_w", dispute_id="dp_1", amount=2000, currency="EUR"),
    ]
    record = fold(events)
    assert record.status is S.DISPUTED
    assert record.flags == ("currency_mismatch:evt_w",)


def test_currency_codes_compare_without_case() -> None:
    record = fold(
        [succeeded(), ev(K.REFUNDED, 20, "evt_r", refund_id="re_1", amount=5, currency="usd")]
    )
    assert (record.currency, record.amount_refunded, record.flags) == ("USD", 5, ())


def test_an_event_without_currency_is_accepted() -> None:
    record = fold(
        [succeeded(), ev(K.REFUNDED, 20, "evt_r", refund_id="re_1", amount=5, currency=None)]
    )
    assert (record.amount_refunded, record.flags) == (5, ())
