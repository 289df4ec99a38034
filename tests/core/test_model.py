"""The webhook model: deterministic ids, event time, verified events."""

from __future__ import annotations

import pytest

from payhook.core.model import StoredWebhook, VerifiedEvent, webhook_id_for


def _webhook(occurred_at: float | None) -> StoredWebhook:
    return StoredWebhook(
        webhook_id=webhook_id_for("stripe", "evt_1"),
        provider="stripe",
        provider_type="stripe",
        event_id="evt_1",
        event_type="payment_intent.succeeded",
        payload=b"{}",
        received_at=200.0,
        occurred_at=occurred_at,
    )


def test_the_webhook_id_depends_on_provider_and_event_id_only() -> None:
    assert webhook_id_for("stripe", "evt_1") == webhook_id_for("stripe", "evt_1")
    assert webhook_id_for("stripe", "evt_1") != webhook_id_for("stripe_eu", "evt_1")
    assert webhook_id_for("stripe", "evt_1") != webhook_id_for("stripe", "evt_2")
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert webhook_id_for("ab", "c") != webhook_id_for("a", "bc")


def test_event_time_is_the_providers_time_else_the_receive_time() -> None:
    assert _webhook(100.0).event_time == 100.0
    assert _webhook(0.0).event_time == 0.0
    assert _webhook(None).event_time == 200.0


def test_a_verified_event_is_built_by_keyword_with_verified_true_by_default() -> None:
    event = VerifiedEvent(event_id="evt_1", event_type="charge.refunded", payload=b"{}")
    assert (event.event_id, event.event_type, event.payload) == ("evt_1", "charge.refunded", b"{}")
    assert (event.occurred_at, event.verified) == (None, True)
    unverified = VerifiedEvent(
        event_id="tr_1@0",
        event_type="classic.payment",
        payload=b"id=tr_1",
        occurred_at=5.0,
        verified=False,
    )
    assert (unverified.occurred_at, unverified.verified) == (5.0, False)
    assert unverified == VerifiedEvent("tr_1@0", "classic.payment", b"id=tr_1", 5.0, False)


def test_a_verified_event_cannot_be_changed_after_verification() -> None:
    event = VerifiedEvent(event_id="evt_1", event_type="charge.refunded", payload=b"{}")
    with pytest.raises(AttributeError):
        event.payload = b"tampered"  # type: ignore[misc]
    assert event.payload == b"{}"
