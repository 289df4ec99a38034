"""Process: apply a stored webhook's payment events to the ledger, exactly once."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from payhook.core import ledger
from payhook.core.clock import Clock, iso_utc, system_clock
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.core.ports import PaymentWrite, ProcessingCommit, ProcessingStore
from payhook.errors import ConcurrencyError, PayloadError
from payhook.providers.base import Provider

log = logging.getLogger("payhook.process")

CANONICAL_EVENT_TYPE = "payment.updated"


class Outcome(StrEnum):
    PROCESSED = "processed"
    ALREADY_PROCESSED = "already_processed"
    MISSING = "missing"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class ProcessResult:
    webhook_id: str
    outcome: Outcome
    payments: list[PaymentRecord] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Plan:
    """What processing one webhook would change: ``commit`` is None when nothing is to write."""

    result: ProcessResult
    commit: ProcessingCommit | None = None


def canonical_event(
    record: PaymentRecord, previous: PaymentRecord | None, webhook: StoredWebhook
) -> dict[str, Any]:
    """The event published for one applied ledger change; its id is stable across retries."""
    event_id = hashlib.sha256(
        f"{webhook.webhook_id}\x00{record.provider}\x00{record.payment_id}".encode()
    ).hexdigest()[:32]
    return {
        "id": f"pe_{event_id}",
        "type": CANONICAL_EVENT_TYPE,
        "provider": record.provider,
        "paymentId": record.payment_id,
        "status": str(record.status),
        "previousStatus": str(previous.status) if previous else None,
        "payment": record.summary(),
        "cause": {
            "webhookId": webhook.webhook_id,
            "eventId": webhook.event_id,
            "eventType": webhook.event_type,
        },
        "occurredAt": iso_utc(record.updated_at),
    }


class Processor:
    """The process step, shared by the embedded workers and the processor Lambda."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        store: ProcessingStore,
        clock: Clock = system_clock,
        max_conflict_retries: int = 5,
    ) -> None:
        self.providers = providers
        self.store = store
        self.clock = clock
        self.max_conflict_retries = max_conflict_retries

    def process(self, webhook_id: str) -> ProcessResult:
        """Raises PayloadError for an event that can never be processed (a poison message)."""
        for attempt in range(self.max_conflict_retries + 1):
            try:
                plan = self.plan(webhook_id)
                if plan.commit is None:
                    return plan.result
                return self.finish(plan, self.store.commit(plan.commit))
            except ConcurrencyError:
                if attempt == self.max_conflict_retries:
                    raise
                log.info("payment changed concurrently; retrying", extra={"webhook_id": webhook_id})
        raise AssertionError("unreachable")  # pragma: no cover

    def plan(self, webhook_id: str) -> Plan:
        """Read and compute everything one webhook changes, without writing.

        A caller that commits several plans at once (the embedded workers batch them into one
        transaction) passes each outcome to ``finish``; on ConcurrencyError it falls back to
        ``process``, which re-reads.
        """
        webhook = self.store.get_webhook(webhook_id)
        if webhook is None:
            return Plan(ProcessResult(webhook_id, Outcome.MISSING))
        if webhook.status is WebhookStatus.PROCESSED:
            return Plan(ProcessResult(webhook_id, Outcome.ALREADY_PROCESSED))
        if webhook.status is WebhookStatus.DEAD:
            return Plan(ProcessResult(webhook_id, Outcome.DEAD))
        provider = self.providers.get(webhook.provider)
        if provider is None:
            raise PayloadError(f"provider {webhook.provider!r} is no longer configured")
        events = provider.payment_events(webhook)
        current: dict[tuple[str, str], PaymentRecord | None] = {}
        original: dict[tuple[str, str], PaymentRecord | None] = {}
        for event in events:
            key = (event.provider, event.payment_id)
            if key not in current:
                current[key] = original[key] = self.store.get_payment(*key)
            current[key], _ = ledger.apply(current[key], event)
        writes: list[PaymentWrite] = []
        published: list[dict[str, Any]] = []
        anomalies: list[str] = []
        for key, record in current.items():
            before = original[key]
            assert record is not None
            if before is not None and before.events == record.events:
                continue  # every fact was already known: nothing to write
            expected = before.version if before else 0
            writes.append(PaymentWrite(record, expected))
            if before is None or before.state() != record.state():
                # Publish the version this commit writes, not the one that was read.
                written = replace(record, version=expected + 1)
                published.append(canonical_event(written, before, webhook))
            anomalies += [f for f in record.flags if not before or f not in before.flags]
        result = ProcessResult(webhook_id, Outcome.PROCESSED, [w.record for w in writes], anomalies)
        return Plan(result, ProcessingCommit(webhook_id, self.clock(), writes, published))

    def finish(self, plan: Plan, committed: bool) -> ProcessResult:
        """The result of a plan whose commit returned ``committed``."""
        if not committed:
            return ProcessResult(plan.result.webhook_id, Outcome.ALREADY_PROCESSED)
        for anomaly in plan.result.anomalies:
            log.warning(
                "ledger anomaly: event kept but not applied",
                extra={"webhook_id": plan.result.webhook_id, "anomaly": anomaly},
            )
        return plan.result
