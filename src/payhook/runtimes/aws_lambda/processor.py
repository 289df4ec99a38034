"""Processor Lambda: an SQS batch of ``{"webhookId": ...}`` -> ledger, exactly once.

Each message is processed on its own; a failure lists only that message in
``batchItemFailures`` (ReportBatchItemFailures), so SQS retries it and, after the queue's
maxReceiveCount, its redrive policy moves it to the dead-letter queue.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from payhook.backends.aws.clients import AwsClients
from payhook.backends.aws.messages import webhook_id_of
from payhook.backends.aws.payments import DynamoProcessingStore
from payhook.backends.aws.secrets import ProviderSecret
from payhook.core.clock import Clock, system_clock
from payhook.runtimes.aws_lambda.coldstart import cold_start
from payhook.service.process import Processor

log = logging.getLogger("payhook.aws.processor")

REQUIRED = ("webhooks_table", "payments_table", "providers_secret_arn")


class SqsProcessor:
    def __init__(
        self,
        secret: ProviderSecret,
        store: DynamoProcessingStore,
        clock: Clock = system_clock,
        max_receive_count: int = 5,
    ) -> None:
        self.secret = secret
        self.store = store
        self.clock = clock
        self.max_receive_count = max_receive_count

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        clients: AwsClients | None = None,
        clock: Clock = system_clock,
    ) -> SqsProcessor:
        start = cold_start(environ, REQUIRED, clients)
        settings = start.settings
        store = DynamoProcessingStore(
            start.clients.dynamodb,
            webhooks_table=settings.webhooks_table,
            payments_table=settings.payments_table,
            clock=clock,
        )
        return cls(start.provider_secret(clock), store, clock, settings.max_receive_count)

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        # Without providers nothing in the batch can succeed: fail it whole (it is retried).
        processor = Processor(self.secret.providers(), self.store, self.clock)
        failures: list[dict[str, str]] = []
        for record in event.get("Records") or []:
            if not self._process(processor, record):
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    def _process(self, processor: Processor, record: Mapping[str, Any]) -> bool:
        receives = (record.get("attributes") or {}).get("ApproximateReceiveCount")
        webhook_id: str | None = None
        try:
            webhook_id = webhook_id_of(record.get("body"))
            result = processor.process(webhook_id)
        except Exception as exc:  # one bad message must not fail the others
            reason = f"{type(exc).__name__}: {exc}"
            log.warning(
                "processing failed",
                extra={
                    "message_id": record.get("messageId"),
                    "webhook_id": webhook_id,
                    "receive_count": receives,
                    "reason": reason,
                },
            )
            if webhook_id is not None:
                last = str(receives).isdigit() and int(str(receives)) >= self.max_receive_count
                self._note_failure(webhook_id, reason, dead=last)
            return False
        log.info(
            "webhook processed",
            extra={
                "webhook_id": webhook_id,
                "outcome": str(result.outcome),
                "payments": len(result.payments),
                "receive_count": receives,
            },
        )
        return True

    def _note_failure(self, webhook_id: str, reason: str, *, dead: bool) -> None:
        try:
            self.store.record_failure(webhook_id, reason, dead=dead)
        except Exception as exc:  # the message is retried anyway; only the note is lost
            log.warning(
                "could not record the failure",
                extra={"webhook_id": webhook_id, "reason": f"{type(exc).__name__}: {exc}"},
            )


@functools.cache
def processor() -> SqsProcessor:
    """The execution environment's processor, built on first use (then reused while warm)."""
    return SqsProcessor.from_environment(os.environ)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return processor().handle(event)
