"""Batch processing for the embedded workers: a batch of queue messages planned together and
committed, acknowledged and followed by the next receive in ONE write."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from payhook.core.clock import Clock, system_clock
from payhook.core.ledger import PaymentRecord
from payhook.core.model import WebhookStatus
from payhook.core.payment import PaymentEvent
from payhook.core.ports import (
    BatchProcessingStore,
    Failure,
    ProcessingCommit,
    ProcessingQueue,
    QueueMessage,
)
from payhook.errors import ConcurrencyError
from payhook.providers.base import Provider
from payhook.service.process import Plan, Processor, settled

log = logging.getLogger("payhook.process")


class BatchWorker:
    """An embedded processing worker. Per batch of messages: one read of their webhooks and
    one of their payments, a plan for each, then ONE write (``ProcessingQueue.complete``)
    that commits every plan (each all-or-nothing), acknowledges the messages with nothing to
    do, records the failures and receives the next batch."""

    #: Times in a row a message is planned again when another worker changed its payment.
    max_conflicts = 5

    def __init__(
        self,
        providers: Mapping[str, Provider],
        store: BatchProcessingStore,
        queue: ProcessingQueue,
        clock: Clock = system_clock,
        *,
        batch_size: int,
        visibility_timeout: float,
        retry_base_seconds: float,
        on_processed: Callable[[float], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        """``on_processed`` hears each committed webhook's lag (seconds from its receipt to
        its commit), ``on_failure`` each failed attempt."""
        self.processor = Processor(providers, store, clock)
        self.on_processed = on_processed
        self.on_failure = on_failure
        self.store = store
        self.queue = queue
        self.batch_size = batch_size
        self.visibility_timeout = visibility_timeout
        self.retry_base_seconds = retry_base_seconds
        self.processed = 0
        self.failures = 0
        self._conflicts: dict[int, int] = {}  # message id -> times planned again

    def run(
        self,
        stop: threading.Event,
        poll_seconds: float,
        also: Callable[[], bool] | None = None,
    ) -> None:
        """Process until ``stop`` is set, then finish the messages held. Full batches go back
        to back (each received in the write of the one before); after a short receive (caught
        up) the worker processes what it got and looks again ``poll_seconds`` later, so that
        under load a write carries a batch, not the few messages that arrived since the last.
        ``also`` runs after every round (the separate processing process chains the audit
        there); while it says it did something, the worker does not pause."""
        held: list[QueueMessage] = []
        failed: list[Failure] = []
        full = False  # the last receive filled a batch: more is probably waiting
        while held or failed or not stop.is_set():
            try:
                if not held and not failed:
                    held = self.queue.receive(self.batch_size)
                    full = len(held) == self.batch_size
                if held or failed:
                    more = self.batch_size if full and not stop.is_set() else 0
                    held, failed = self.step(held, failed, receive=more)
                    full = more > 0 and len(held) >= self.batch_size
            except Exception:
                log.exception("processing batch failed; its messages come back after the timeout")
                held, failed, full = [], [], False
            busy = also() if also is not None else False
            if not (held or failed or full or busy):
                stop.wait(poll_seconds)

    def step(
        self, held: Sequence[QueueMessage], failed: Sequence[Failure], *, receive: int
    ) -> tuple[list[QueueMessage], list[Failure]]:
        """Process ``held`` and record ``failed`` in one write that also receives up to
        ``receive`` messages; returns the messages to process next (the conflicting ones to
        plan again, then those received) and the failures to record with them."""
        plans = self.plan_batch([m.webhook_id for m in held])
        commits: list[tuple[QueueMessage, Plan, ProcessingCommit]] = []
        done: list[QueueMessage] = []
        failures = list(failed)
        for message, plan in zip(held, plans, strict=True):
            if isinstance(plan, Exception):
                failures.append(self._failure(message, plan))
            elif plan.commit is None:  # already processed, dead or missing: acknowledge
                done.append(message)
                self._finished(message)
            else:
                commits.append((message, plan, plan.commit))
        completion = self.queue.complete(
            [(m, commit) for m, _, commit in commits], done, failures, receive
        )
        again: list[QueueMessage] = []
        failed_now: list[Failure] = []
        for (message, plan, commit), outcome in zip(commits, completion.outcomes, strict=True):
            conflicts = self._conflicts.get(message.message_id, 0)
            if isinstance(outcome, ConcurrencyError) and conflicts < self.max_conflicts:
                self._conflicts[message.message_id] = conflicts + 1  # re-read, plan again
                again.append(message)
            elif isinstance(outcome, Exception):
                failed_now.append(self._failure(message, outcome))
            else:
                self.processor.finish(plan, outcome)
                self._finished(message)
                if outcome is True and self.on_processed and plan.received_at is not None:
                    self.on_processed(max(0.0, commit.processed_at - plan.received_at))
        return again + completion.received, failed_now

    def plan_batch(self, webhook_ids: Sequence[str]) -> list[Plan | Exception]:
        """Per webhook, its plan (as ``Processor.plan``) or what made planning fail. Each plan
        starts from the payments as the batch's earlier plans write them, since their commits
        apply in order."""
        webhooks = self.store.get_webhooks(webhook_ids)
        staged: list[Plan | list[PaymentEvent] | Exception] = []
        for webhook_id in webhook_ids:
            webhook = webhooks.get(webhook_id)
            if webhook is None or webhook.status is not WebhookStatus.RECEIVED:
                staged.append(settled(webhook_id, webhook))
                continue
            try:
                staged.append(self.processor.events(webhook))
            except Exception as exc:
                staged.append(exc)
        keys = {(e.provider, e.payment_id) for s in staged if isinstance(s, list) for e in s}
        try:
            payments = {key: None for key in keys} | dict(self.store.get_payments(keys))
        except Exception:  # an unreadable payment: read one by one, so only its webhooks fail
            payments = {}

        def read(provider: str, payment_id: str) -> PaymentRecord | None:
            if (provider, payment_id) not in payments:
                payments[(provider, payment_id)] = self.store.get_payment(provider, payment_id)
            return payments[(provider, payment_id)]

        plans: list[Plan | Exception] = []
        for webhook_id, events in zip(webhook_ids, staged, strict=True):
            if not isinstance(events, list):
                plans.append(events)
                continue
            try:
                plan = self.processor.plan_events(webhooks[webhook_id], events, read)
            except Exception as exc:
                plans.append(exc)
                continue
            for record in plan.result.payments:  # what the next plans start from
                payments[(record.provider, record.payment_id)] = record
            plans.append(plan)
        return plans

    def _finished(self, message: QueueMessage) -> None:
        self._conflicts.pop(message.message_id, None)
        self.processed += 1

    def _failure(self, message: QueueMessage, exc: Exception) -> Failure:
        self._conflicts.pop(message.message_id, None)
        self.failures += 1
        if self.on_failure is not None:
            self.on_failure()
        error, receives = type(exc).__name__, message.receive_count
        extra = {"webhook_id": message.webhook_id, "receive_count": receives, "error": error}
        log.warning("processing failed", extra=extra)
        # Backoff doubling per receive, never past the timeout (that brings it back anyway).
        delay = self.retry_base_seconds * 2 ** (message.receive_count - 1)
        return Failure(message, f"{type(exc).__name__}: {exc}", min(self.visibility_timeout, delay))
