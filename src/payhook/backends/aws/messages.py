"""The processing queue's messages: ``{"webhookId": ...}`` and nothing else.

The receiver, the sweeper and the redrive send them; the processor reads them. A message
carries no payload: the webhook item is the one copy of what was received.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from payhook.backends.aws.errors import aws_call
from payhook.errors import PayloadError, StorageUnavailableError

SQS_BATCH_LIMIT = 10


def message_body(webhook_id: str) -> str:
    return json.dumps({"webhookId": webhook_id}, separators=(",", ":"))


def webhook_id_of(body: object) -> str:
    """The webhook id a processing message carries; PayloadError if it carries none."""
    if not isinstance(body, str):
        raise PayloadError("message has no body")
    try:
        message = json.loads(body)
    except ValueError:
        raise PayloadError("message body is not JSON") from None
    webhook_id = message.get("webhookId") if isinstance(message, dict) else None
    if not isinstance(webhook_id, str) or not webhook_id:
        raise PayloadError('message body has no "webhookId" string')
    return webhook_id


def send_to_queue(sqs: Any, queue_url: str, webhook_ids: Sequence[str]) -> None:
    """One message per webhook, in batches; StorageUnavailableError unless SQS took all."""
    for start in range(0, len(webhook_ids), SQS_BATCH_LIMIT):
        chunk = webhook_ids[start : start + SQS_BATCH_LIMIT]
        entries = [{"Id": str(i), "MessageBody": message_body(wid)} for i, wid in enumerate(chunk)]
        with aws_call("enqueueing the webhook"):
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        failed = response.get("Failed") or []
        if failed:
            codes = sorted({str(f.get("Code", "Unknown")) for f in failed})
            raise StorageUnavailableError(f"enqueueing the webhook failed: {', '.join(codes)}")
