"""Gaps: a webhook or payment change the stream never brought to the chain.

A stream batch that fails every retry (or ages past the stream's retention) goes to
``audit-failures`` as shard and sequence numbers only: its changes are never chained. Each
item still holds its latest state, and the chain holds the subject's trail, so comparing the
two finds what is missing:

- a payment's trail must record every version from 1 to the row's (the ledger bumps the
  version of every write it makes); a version the trail skips or lacks is a gap;
- a webhook's trail must link (each change starts from the status the previous one left)
  and end at the item's status.

``audit repair`` appends one entry per gapped subject, action ``late``: the item's current
state, and what was lost (``lost``). A late entry acknowledges the gaps before it, so the
trail verifies again; a record that the stream delivers after the repair (it was late, not
lost) is then recognized as already covered. The gaps stay visible in the chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from payhook.core.audit import AuditEntry, PaymentRow

LATE = "late"


@dataclass(frozen=True, slots=True)
class Gap:
    entity: str  # "webhook" | "payment"
    entity_key: str
    lost: tuple[str, ...]
    #: The state a late entry records: the item as it is now.
    current: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"{self.entity} {self.entity_key}"


@dataclass(slots=True)
class _Trail:
    last_version: int = 0
    status: str | None = None
    latest: AuditEntry | None = None  # the last entry that records a state
    covered: bool = False  # a late entry came: older changes arriving now are covered
    lost: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # not repairable: a change never made


class Trails:
    """Each subject's trail, observed entry by entry in chain order."""

    def __init__(self) -> None:
        self.payments: dict[str, _Trail] = {}
        self.webhooks: dict[str, _Trail] = {}

    def tracking(self, entries: Iterable[AuditEntry]) -> Iterator[AuditEntry]:
        for entry in entries:
            if entry.entity == "payment":
                self._payment(self.payments.setdefault(entry.entity_key, _Trail()), entry)
            elif entry.entity == "webhook":
                self._webhook(self.webhooks.setdefault(entry.entity_key, _Trail()), entry)
            yield entry

    @staticmethod
    def _payment(trail: _Trail, entry: AuditEntry) -> None:
        version = entry.data.get("version")
        if entry.action == LATE:
            trail.lost.clear()
            trail.covered = True
            if isinstance(version, int):
                trail.last_version = max(trail.last_version, version)
                trail.latest = entry
            return
        if entry.action == "remove" or not isinstance(version, int):
            trail.latest = entry
            return
        if version <= trail.last_version:
            if not trail.covered:
                trail.wrong.append(
                    f"audit entry {entry.seq} records version {version} after version"
                    f" {trail.last_version}: a change the ledger did not make"
                )
            return
        if version > trail.last_version + 1:
            trail.lost.append(_versions(trail.last_version + 1, version - 1))
        trail.last_version, trail.latest = version, entry

    @staticmethod
    def _webhook(trail: _Trail, entry: AuditEntry) -> None:
        status = entry.data.get("status")
        if entry.action == LATE:
            trail.lost.clear()
            trail.covered, trail.status, trail.latest = True, status, entry
            return
        if entry.action == "remove":
            trail.status, trail.latest = None, entry
            return
        if entry.action == "modify":
            previous = entry.data.get("previousStatus")
            if trail.covered and status == trail.status:
                return  # a change the late entry already covers, delivered after it
            if previous != trail.status:
                missing = f"changes from {trail.status} to {previous}"
                trail.lost.append("its insert" if trail.latest is None else missing)
        trail.status, trail.latest = status, entry

    def payment_gap(self, row: PaymentRow) -> Gap | None:
        trail = self.payments.get(row.entity_key, _Trail())
        lost = list(trail.lost)
        if row.version > trail.last_version:
            lost.append(_versions(trail.last_version + 1, row.version))
        if not lost:
            return None
        return Gap("payment", row.entity_key, tuple(lost), row.audited())

    def payment_latest(self, entity_key: str) -> AuditEntry | None:
        trail = self.payments.get(entity_key)
        return trail.latest if trail else None

    def wrong(self, entity_key: str) -> list[str]:
        trail = self.payments.get(entity_key)
        return list(trail.wrong) if trail else []

    def webhook_gap(self, item: Mapping[str, Any]) -> Gap | None:
        webhook_id = str(item["webhookId"]["S"])
        current = {
            name: item[attribute]["S"] if attribute in item else None
            for name, attribute in (
                ("provider", "provider"),
                ("eventId", "eventId"),
                ("eventType", "eventType"),
                ("status", "status"),
            )
        }
        trail = self.webhooks.get(webhook_id, _Trail())
        lost = list(trail.lost)
        if trail.latest is None or trail.latest.action == "remove":
            lost.append(f"its {'insert' if trail.latest is None else 'reinsert'}")
        elif trail.status != current["status"]:
            lost.append(f"changes from {trail.status} to {current['status']}")
        if not lost:
            return None
        return Gap("webhook", webhook_id, tuple(lost), current)


def _versions(first: int, last: int) -> str:
    return f"version {first}" if first == last else f"versions {first} to {last}"
