"""Process: apply a stored webhook's payment events to the ledger, exactly once (the embedded
workers do it a batch at a time: ``service.batch``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from payhook.core import ledger
from payhook.core.clock import Clock, system_clock
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.core.payment import PaymentEvent
from payhook.core.ports import (
    PaymentWrite,
    ProcessingCommit,
    ProcessingStore,
)
from payhook.errors import ConcurrencyError, PayloadError
from payhook.providers.base import Provider
from payhook.service.events import CANONICAL_EVENT_TYPE as CANONICAL_EVENT_TYPE
from payhook.service.events import canonical_event

log = logging.getLogger("payhook.process")


class Outcome(StrEnum):
    PROCESSED = "processed"
    ALREADY_PROCESSED = "already_processed"
    MISSING = "missing"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """``payments``: the payment records the commit writes (each at its new version)."""

    webhook_id: str
    outcome: Outcome
    payments: list[PaymentRecord] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Plan:
    """What processing one webhook would change: ``commit`` is None when nothing is to write."""

    result: ProcessResult
    commit: ProcessingCommit | None = None
    received_at: float | None = None  # of the webhook (for the processing lag)


def settled(webhook_id: str, webhook: StoredWebhook | None) -> Plan:
    """The plan of a webhook that is not ``received`` (or missing): nothing to write."""
    if webhook is None:
        return Plan(ProcessResult(webhook_id, Outcome.MISSING))
    if webhook.status is WebhookStatus.DEAD:
        return Plan(ProcessResult(webhook_id, Outcome.DEAD))
    return Plan(ProcessResult(webhook_id, Outcome.ALREADY_PROCESSED))


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
        """Read and compute everything one webhook changes, without writing."""
        webhook = self.store.get_webhook(webhook_id)
        if webhook is None or webhook.status is not WebhookStatus.RECEIVED:
            return settled(webhook_id, webhook)
        return self.plan_events(webhook, self.events(webhook), self.store.get_payment)

    def events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        """The canonical payment events of a stored webhook, from its provider."""
        provider = self.providers.get(webhook.provider)
        if provider is None:
            raise PayloadError(f"provider {webhook.provider!r} is no longer configured")
        return provider.payment_events(webhook)

    def plan_events(
        self,
        webhook: StoredWebhook,
        events: Sequence[PaymentEvent],
        read_payment: Callable[[str, str], PaymentRecord | None],
    ) -> Plan:
        """The plan of a ``received`` webhook: its events applied to the payments as
        ``read_payment`` returns them."""
        current: dict[tuple[str, str], PaymentRecord | None] = {}
        original: dict[tuple[str, str], PaymentRecord | None] = {}
        for event in events:
            key = (event.provider, event.payment_id)
            if key not in current:
                current[key] = original[key] = read_payment(*key)
            current[key], _ = ledger.apply(current[key], event)
        writes: list[PaymentWrite] = []
        written: list[PaymentRecord] = []  # as the commit writes them: version bumped
        published: list[dict[str, Any]] = []
        anomalies: list[str] = []
        for key, record in current.items():
            before = original[key]
            assert record is not None
            if before is not None and before.events == record.events:
                continue  # every fact was already known: nothing to write
            expected = before.version if before else 0
            writes.append(PaymentWrite(record, expected))
            written.append(replace(record, version=expected + 1))
            if before is None or before.state() != record.state():
                published.append(canonical_event(written[-1], before, webhook))
            anomalies += [f for f in record.flags if not before or f not in before.flags]
        webhook_id = webhook.webhook_id
        result = ProcessResult(webhook_id, Outcome.PROCESSED, written, anomalies)
        commit = ProcessingCommit(webhook_id, self.clock(), writes, published)
        return Plan(result, commit, webhook.received_at)

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
