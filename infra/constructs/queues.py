"""SQS: the hand-off from receiver to processor, its dead letters, and the audit failures.

- processing: the receiver sends ``{"webhookId": ...}``; after 5 receives a message moves to
  the dead-letter queue, from which it can be redriven.
- audit failures: the on-failure destination of the audit function's stream sources. It holds
  the shard and sequence range of each batch that failed every retry (not the records).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import PayhookSettings

MAX_RECEIVE_COUNT = 5
DEAD_LETTER_RETENTION = Duration.days(14)  # the SQS maximum: time to find and fix the cause


class PayhookQueues(Construct):
    """Encrypted, TLS-only queues."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)

        def queue(
            construct_id: str,
            name: str,
            *,
            retention: Duration,
            visibility_timeout: Duration | None = None,
            dead_letter_queue: sqs.DeadLetterQueue | None = None,
        ) -> sqs.Queue:
            return sqs.Queue(
                self,
                construct_id,
                queue_name=settings.name(name),
                encryption=sqs.QueueEncryption.KMS,
                encryption_master_key=key,
                # Reuse data keys for 5 minutes: fewer KMS calls, same protection.
                data_key_reuse=Duration.minutes(5),
                enforce_ssl=True,
                removal_policy=settings.removal_policy,
                retention_period=retention,
                visibility_timeout=visibility_timeout,
                dead_letter_queue=dead_letter_queue,
            )

        self.dead_letters = queue("DeadLetters", "processing-dlq", retention=DEAD_LETTER_RETENTION)
        self.processing = queue(
            "Processing",
            "processing",
            visibility_timeout=Duration.seconds(settings.processing_visibility_timeout_seconds),
            retention=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=MAX_RECEIVE_COUNT
            ),
        )
        self.audit_failures = queue(
            "AuditFailures", "audit-failures", retention=DEAD_LETTER_RETENTION
        )
