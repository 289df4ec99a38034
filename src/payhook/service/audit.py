"""Audit: append one hash-chained entry per change of a webhook or payment."""

from __future__ import annotations

from collections.abc import Sequence

from payhook.core.audit import AuditEntry, ChainReport, Change, extend, verify_chain
from payhook.core.clock import Clock, iso_utc, system_clock
from payhook.core.ports import AuditLog


def record_changes(
    log: AuditLog, changes: Sequence[Change], clock: Clock = system_clock
) -> list[AuditEntry]:
    """Chain ``changes`` onto the log's head and append them in one atomic write."""
    if not changes:
        return []
    head = log.head()
    entries = extend(head, changes, iso_utc(clock()))
    log.append(entries, expected_head=head)
    return entries


def verify_log(log: AuditLog) -> ChainReport:
    return verify_chain(log.entries(), log.recorded_head())
