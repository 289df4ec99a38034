"""Audit Lambda: the webhooks and payments streams -> hash chain, and payments -> EventBridge.

Per batch: skip the records already chained (a stream retry), publish the canonical events
the rest carry (the outbox), then chain their changes, each onto its subject's shard
(``backends/aws/shards.py``); each append's head is MAC'd with the KMS HMAC key (one
GenerateMac call per append and shard). At most once a minute per execution environment, a
sharded chain also gets a checkpoint of every shard's head. Any failure raises, so the stream
retries (and bisects, then gives up to the on-failure destination); the markers written with the
entries make a retried record count once. The log line of each batch carries the new head
(seq and hash): CloudWatch Logs keeps a record of heads this function cannot rewrite.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from payhook.backends.aws.audit import MAX_ENTRIES_PER_APPEND, DynamoAuditLog, KmsChainKey
from payhook.backends.aws.clients import AwsClients
from payhook.backends.aws.events import EventPublisher
from payhook.backends.aws.shards import CheckpointTimer, ShardedAuditLog
from payhook.backends.aws.streams import read_record
from payhook.core.audit import AuditEntry, Change
from payhook.core.chain_key import ChainKey
from payhook.core.clock import Clock, system_clock
from payhook.errors import ConcurrencyError
from payhook.runtimes.aws_lambda.coldstart import cold_start
from payhook.service.audit import record_changes

log = logging.getLogger("payhook.aws.audit")

REQUIRED = ("audit_table", "event_bus_name", "audit_key_id")
# Both streams (and every stream shard) append to the same audit shards, so losing the head
# race is routine; a few seconds of jittered retries resolve it inside one invocation instead
# of using up the stream's bounded retries.
MAX_BACKOFF_SECONDS = 1.0


class StreamAuditor:
    def __init__(
        self,
        audit_log: DynamoAuditLog | ShardedAuditLog,
        publisher: EventPublisher,
        key: ChainKey,
        clock: Clock = system_clock,
        *,
        max_conflict_retries: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(audit_log, DynamoAuditLog):  # one chain: the single-shard log
            sharded = ShardedAuditLog(audit_log.dynamodb, table=audit_log.table)
            sharded.shards[0] = audit_log
            audit_log = sharded
        self.audit_log = audit_log
        self.publisher = publisher
        self.key = key
        self.clock = clock
        self.max_conflict_retries = max_conflict_retries
        self.sleep = sleep
        #: Appends that lost the head race and were retried (a measure of contention).
        self.conflicts = 0
        self.checkpoint_timer = CheckpointTimer(clock)

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        clients: AwsClients | None = None,
        clock: Clock = system_clock,
    ) -> StreamAuditor:
        start = cold_start(environ, REQUIRED, clients)
        return cls(
            ShardedAuditLog(
                start.clients.dynamodb,
                table=start.settings.audit_table,
                shards=start.settings.audit_shards,
            ),
            EventPublisher(start.clients.events, bus_name=start.settings.event_bus_name),
            KmsChainKey(start.clients.kms, key_id=start.settings.audit_key_id),
            clock,
        )

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        records = [read_record(r) for r in event.get("Records") or []]
        done = self.audit_log.chained_sources(r.source_id for r in records if r.change)
        pending = [r for r in records if r.source_id not in done]
        events = [e for r in pending for e in r.publish]
        if events:
            self.publisher.publish(events)
        changes = [r.change for r in pending if r.change is not None]
        head = self.chain(changes)
        if self.audit_log.sharded and changes and self.checkpoint_timer.due():
            self.audit_log.write_checkpoint(self.key, self.clock)
        log.info(
            "stream batch audited",
            extra={
                "records": len(records),
                "skipped_as_chained": len(done),
                "entries": len(changes),
                "published": len(events),
                "head_seq": head.seq if head else None,
                "head_hash": head.hash if head else None,
            },
        )
        # Valid with or without ReportBatchItemFailures: failures raise instead.
        return {"batchItemFailures": []}

    def chain(self, changes: Sequence[Change]) -> AuditEntry | None:
        """Chain each change onto its subject's shard; returns the last new head."""
        head: AuditEntry | None = None
        for shard, group in sorted(self.audit_log.by_shard(changes).items()):
            log_of_shard = self.audit_log.shards[shard]
            for start in range(0, len(group), MAX_ENTRIES_PER_APPEND):
                chunk = group[start : start + MAX_ENTRIES_PER_APPEND]
                head = self._append(log_of_shard, chunk) or head
        return head

    def _append(self, shard: DynamoAuditLog, changes: Sequence[Change]) -> AuditEntry | None:
        """Chain ``changes`` onto ``shard``; returns its new head (None when another writer
        chained them all)."""
        for attempt in range(self.max_conflict_retries + 1):
            try:
                return record_changes(shard, changes, self.key, self.clock)[-1]
            except ConcurrencyError:
                self.conflicts += 1
                if attempt == self.max_conflict_retries:
                    raise
                # Another writer moved the head; keep only what it did not chain, and retry.
                chained = self.audit_log.chained_sources(c.source_id for c in changes)
                changes = [c for c in changes if c.source_id not in chained]
                if not changes:
                    return None
                log.info("audit head moved; retrying", extra={"attempt": attempt + 1})
                self.sleep(random.uniform(0, min(MAX_BACKOFF_SECONDS, 0.05 * 2**attempt)))
        return None  # not reached: the last attempt returns or raises


@functools.cache
def auditor() -> StreamAuditor:
    """The execution environment's auditor, built on first use (then reused while warm)."""
    return StreamAuditor.from_environment(os.environ)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return auditor().handle(event)
