"""``Trails``: what a subject's audit trail lacks, compared with the item as stored."""

from __future__ import annotations

from typing import Any

from payhook.backends.aws.trails import Trails
from payhook.core.audit import AuditEntry, PaymentRow


def entry(seq: int, entity: str, key: str, action: str, **data: Any) -> AuditEntry:
    return AuditEntry(seq, "t", entity, key, action, data, "", "p", "h")


def row(version: int, status: str = "succeeded") -> PaymentRow:
    return PaymentRow("stripe", "pi_1", status, "eur", 100, 0, version, {})


def follow(*entries: AuditEntry) -> Trails:
    trails = Trails()
    assert list(trails.tracking(entries)) == list(entries)
    return trails


def test_a_version_lost_between_two_is_a_gap_until_a_late_entry_covers_it() -> None:
    p = "stripe/pi_1"
    trails = follow(
        entry(1, "payment", p, "insert", version=1), entry(2, "payment", p, "modify", version=3)
    )
    gap = trails.payment_gap(row(3))
    assert gap is not None
    assert gap.lost == ("version 2",)

    covered = follow(
        entry(1, "payment", p, "insert", version=1),
        entry(2, "payment", p, "modify", version=3),
        entry(3, "payment", p, "late", version=3, late=True, lost=["version 2"]),
    )
    assert covered.payment_gap(row(3)) is None
    assert covered.wrong(p) == []


def test_a_version_recorded_twice_without_a_repair_is_a_change_the_ledger_did_not_make() -> None:
    p = "stripe/pi_1"
    trails = follow(
        entry(1, "payment", p, "insert", version=1), entry(2, "payment", p, "modify", version=1)
    )
    assert trails.wrong(p) == [
        "audit entry 2 records version 1 after version 1: a change the ledger did not make"
    ]


def test_a_webhook_trail_must_link_and_end_at_the_item_status() -> None:
    item = {"webhookId": {"S": "wh_1"}, "status": {"S": "processed"}}
    linked = follow(
        entry(1, "webhook", "wh_1", "insert", status="received"),
        entry(2, "webhook", "wh_1", "modify", status="processed", previousStatus="received"),
    )
    assert linked.webhook_gap(item) is None
    skipped = follow(
        entry(1, "webhook", "wh_1", "insert", status="received"),
        entry(2, "webhook", "wh_1", "modify", status="processed", previousStatus="dead"),
    )
    gap = skipped.webhook_gap(item)
    assert gap is not None
    assert gap.lost == ("changes from received to dead",)
    assert follow().webhook_gap(item) is not None  # never chained at all
