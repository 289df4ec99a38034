"""Redrive: bring dead webhooks back to processing, each processed exactly once.

On the last receive SQS allows, the processor marks the webhook ``dead`` and SQS moves its
message to the dead-letter queue. Moving the message back is not enough: the processor reads
a dead webhook as finished and drops the message. A redrive therefore resets the webhook from
``dead`` to ``received`` with ONE conditional update (so of two redrives running at once, one
wins), then sends it to the processing queue, then deletes the dead letter. Each step may be
repeated safely: a webhook already ``received`` is sent again (its earlier message may be
lost; a second message changes nothing, since the processor commits only while the webhook is
``received``), a processed or expired one is not sent. A crash after the reset and before the
send leaves a ``received`` webhook, which the next redrive or the sweeper (``sweep.py``)
re-queues; a dead letter not yet deleted is redriven again on the next run.

``start_message_move_task`` is not used: it moves messages without resetting webhooks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payhook.backends.aws.errors import CONDITION_FAILED, aws_call, error_code, unavailable
from payhook.backends.aws.items import n, s
from payhook.backends.aws.messages import SQS_BATCH_LIMIT, send_to_queue, webhook_id_of
from payhook.backends.aws.status_index import reset_to_received
from payhook.core.clock import Clock, system_clock
from payhook.core.model import WebhookStatus
from payhook.errors import PayloadError

log = logging.getLogger("payhook.aws.redrive")

#: Dead letters read per run unless the caller says otherwise.
DEFAULT_MAX_MESSAGES = 1000
#: How long a dead letter being redriven stays invisible to another reader of the queue.
VISIBILITY_TIMEOUT_SECONDS = 120
#: Long polling: a short poll samples a subset of SQS servers and may miss messages.
WAIT_SECONDS = 1
MISSING = "missing"


@dataclass(frozen=True, slots=True)
class RedriveReport:
    #: Reset from dead to received and queued.
    redriven: tuple[str, ...] = ()
    #: Found ``received`` (a dead letter whose webhook was never marked dead, or a redrive
    #: interrupted before its send) and queued again.
    requeued: tuple[str, ...] = ()
    #: Not queued, with the reason: the webhook's status, or "missing" (expired or unknown).
    skipped: dict[str, str] = field(default_factory=dict)
    #: Dead letters without a webhook id, left in the dead-letter queue.
    unreadable: int = 0


class _Redrive:
    """The reset-and-send step shared by both entry points; accumulates the report."""

    def __init__(self, dynamodb: Any, sqs: Any, table: str, queue_url: str, clock: Clock) -> None:
        self.dynamodb, self.sqs, self.table, self.queue_url = dynamodb, sqs, table, queue_url
        self.clock = clock
        self.redriven: list[str] = []
        self.requeued: list[str] = []
        self.skipped: dict[str, str] = {}
        self.seen: set[str] = set()

    def queue(self, webhook_ids: list[str], *, received_too: bool) -> None:
        """Reset each dead webhook and send it (and each received one, if ``received_too``)."""
        to_send: list[str] = []
        for webhook_id in webhook_ids:
            if webhook_id in self.seen:
                continue  # two dead letters of one webhook: queued once
            self.seen.add(webhook_id)
            status = self._reset(webhook_id)
            if status is None:
                self.redriven.append(webhook_id)
                to_send.append(webhook_id)
            elif status == WebhookStatus.RECEIVED and received_too:
                self.requeued.append(webhook_id)
                to_send.append(webhook_id)
            else:
                self.skipped[webhook_id] = status
        send_to_queue(self.sqs, self.queue_url, to_send)

    def report(self, unreadable: int = 0) -> RedriveReport:
        return RedriveReport(
            tuple(self.redriven), tuple(self.requeued), dict(self.skipped), unreadable
        )

    def _reset(self, webhook_id: str) -> str | None:
        """Dead -> received; None when reset, else the status found (or "missing")."""
        now = n(self.clock())
        try:
            reset = reset_to_received(self.table, webhook_id, now, stamp="redrivenAt")
            reset["ExpressionAttributeValues"][":dead"] = s(WebhookStatus.DEAD)
            self.dynamodb.update_item(
                **reset,
                ConditionExpression="#s = :dead",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise unavailable("resetting the dead webhook", exc) from exc
            old = exc.response.get("Item")
            return str(old["status"]["S"]) if old and "status" in old else MISSING
        except BotoCoreError as exc:
            raise unavailable("resetting the dead webhook", exc) from exc
        return None


def redrive_webhooks(
    dynamodb: Any,
    sqs: Any,
    *,
    webhooks_table: str,
    queue_url: str,
    webhook_ids: list[str],
    clock: Clock = system_clock,
) -> RedriveReport:
    """Redrive the given dead webhooks, whether or not their dead letter still exists (it
    expires after 14 days). A webhook that is not dead is skipped with its status."""
    redrive = _Redrive(dynamodb, sqs, webhooks_table, queue_url, clock)
    for start in range(0, len(webhook_ids), SQS_BATCH_LIMIT):
        redrive.queue(webhook_ids[start : start + SQS_BATCH_LIMIT], received_too=False)
    return redrive.report()


def redrive_dead_letters(
    dynamodb: Any,
    sqs: Any,
    *,
    webhooks_table: str,
    queue_url: str,
    dead_letter_queue_url: str,
    clock: Clock = system_clock,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> RedriveReport:
    """Redrive every webhook named by the dead-letter queue (at most ``max_messages``
    messages), deleting each dead letter once its webhook is queued or needs nothing.

    Raises StorageUnavailableError when DynamoDB or SQS fails; what was redriven until then
    stays redriven, and the dead letters not deleted are read again by the next run.
    """
    if max_messages <= 0:
        raise ValueError(f"max_messages: got {max_messages}, expected a positive number")
    redrive = _Redrive(dynamodb, sqs, webhooks_table, queue_url, clock)
    unreadable: set[str] = set()
    for _ in range(-(-max_messages // SQS_BATCH_LIMIT)):  # ceil: bounded by max_messages
        with aws_call("reading the dead-letter queue"):
            messages = sqs.receive_message(
                QueueUrl=dead_letter_queue_url,
                MaxNumberOfMessages=SQS_BATCH_LIMIT,
                VisibilityTimeout=VISIBILITY_TIMEOUT_SECONDS,
                WaitTimeSeconds=WAIT_SECONDS,
            ).get("Messages", [])
        if not messages:
            break
        readable: list[dict[str, Any]] = []
        ids: list[str] = []
        for message in messages:
            try:
                ids.append(webhook_id_of(message.get("Body")))
                readable.append(message)
            except PayloadError:
                unreadable.add(str(message.get("MessageId")))
        redrive.queue(ids, received_too=True)
        _delete(sqs, dead_letter_queue_url, readable)
    report = redrive.report(len(unreadable))
    log.info(
        "dead letters redriven",
        extra={
            "redriven": len(report.redriven),
            "requeued": len(report.requeued),
            "skipped": len(report.skipped),
            "unreadable": report.unreadable,
        },
    )
    return report


def _delete(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    if not messages:
        return
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    with aws_call("deleting redriven dead letters"):
        failed = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed")
    if failed:
        # Harmless: the dead letter comes back, and its webhook is then skipped or re-sent.
        log.warning("could not delete redriven dead letters", extra={"count": len(failed)})
