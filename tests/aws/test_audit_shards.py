"""The sharded audit chain on moto: concurrent appends across shards verify, and race less
for a head than appends to the single chain do."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from payhook.backends.aws.audit import KmsChainKey
from payhook.backends.aws.events import EventPublisher
from payhook.backends.aws.shards import ShardedAuditLog, chain_names, shard_of
from payhook.backends.aws.verify import StackAuditReport, verify_stack
from payhook.core.audit import Change
from payhook.runtimes.aws_lambda.audit import StreamAuditor
from payhook.service.audit import payment_problem
from tests.aws.emulator import AwsStack
from tests.aws.resources import create_tables
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws

WRITERS = 8  # concurrent audit invocations
APPENDS_PER_WRITER = 20
SHARDS = 16


class AtomicRequests:
    """The DynamoDB client with each request applied atomically, as DynamoDB does.

    moto applies a transaction step by step on shared dicts (and restores a copy when one
    fails), so a thread reading or writing while another is inside it could see or make a
    half-applied state; DynamoDB never does. Each request is serialized, nothing more: between
    a head read, its MAC and the conditional append, other writers still move the head.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def atomic(**kwargs: Any) -> Any:
            with self.lock:
                return method(**kwargs)

        return atomic


def run_writers(stack: AwsStack, clock: FakeClock, shards: int) -> tuple[int, ShardedAuditLog]:
    """WRITERS threads each chain APPENDS_PER_WRITER changes of their own subjects, one
    append each; returns the conflicts (appends retried because a head moved)."""
    dynamodb = AtomicRequests(stack.clients.dynamodb)
    key = KmsChainKey(stack.clients.kms, key_id=stack.audit_key_id)
    publisher = EventPublisher(stack.clients.events, bus_name=stack.env["PAYHOOK_EVENT_BUS_NAME"])
    auditors = [
        StreamAuditor(
            ShardedAuditLog(dynamodb, table=stack.audit_table, shards=shards),
            publisher,
            key,
            clock,
            max_conflict_retries=200,
            sleep=lambda seconds: time.sleep(seconds / 20),
        )
        for _ in range(WRITERS)
    ]
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        start.wait()
        try:
            for i in range(APPENDS_PER_WRITER):
                subject = f"wh_{writer}_{i}_{random.random()}"
                change = Change("webhook", subject, "insert", {"status": "received"}, subject)
                auditors[writer].chain([change])
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    log = ShardedAuditLog(stack.clients.dynamodb, table=stack.audit_table, shards=shards)
    log.write_checkpoint(key, clock)
    return sum(a.conflicts for a in auditors), log


def verify(stack: AwsStack, log: ShardedAuditLog) -> StackAuditReport:
    return verify_stack(
        log,
        KmsChainKey(stack.clients.kms, key_id=stack.audit_key_id),
        webhooks_table=stack.webhooks_table,
        payments_table=stack.payments_table,
        payment_problem=payment_problem,
    )


def test_concurrent_appends_across_shards_verify_with_fewer_conflicts_than_one_head(
    stack: AwsStack, clock: FakeClock
) -> None:
    single_conflicts, single = run_writers(stack, clock, shards=1)
    single_report = verify(stack, single)
    # A fresh audit table for the sharded run.
    stack.clients.dynamodb.delete_table(TableName=stack.audit_table)
    create_tables(
        stack.clients.dynamodb,
        webhooks="scratch-w",
        payments="scratch-p",
        audit=stack.audit_table,
    )
    sharded_conflicts, sharded = run_writers(stack, clock, shards=SHARDS)
    sharded_report = verify(stack, sharded)

    appends = WRITERS * APPENDS_PER_WRITER
    print(
        f"conflicts per append: single head {single_conflicts / appends:.2f},"
        f" {SHARDS} shards {sharded_conflicts / appends:.2f}"
    )
    assert single_report.ok, single_report.to_dict()
    assert [r.entries for _, r in single_report.chains] == [appends]
    assert sharded_report.ok, sharded_report.to_dict()
    entries = [r.entries for name, r in sharded_report.chains if name.startswith("shard#")]
    assert sum(entries) == appends
    assert sum(1 for n in entries if n) > 1  # the subjects did spread over shards
    assert sharded_conflicts < single_conflicts


def test_a_shard_cut_back_below_a_checkpoint_is_detected(stack: AwsStack, clock: FakeClock) -> None:
    key = KmsChainKey(stack.clients.kms, key_id=stack.audit_key_id)
    log = ShardedAuditLog(stack.clients.dynamodb, table=stack.audit_table, shards=4)
    publisher = EventPublisher(stack.clients.events, bus_name=stack.env["PAYHOOK_EVENT_BUS_NAME"])
    auditor = StreamAuditor(log, publisher, key, clock)
    subjects = [f"wh_cut_{i}" for i in range(12)]
    for subject in subjects:
        auditor.chain([Change("webhook", subject, "insert", {"status": "received"}, subject)])
    checkpoint = log.write_checkpoint(key, clock)
    assert checkpoint is not None
    assert log.write_checkpoint(key, clock) is None  # nothing moved since
    assert verify(stack, log).ok

    # Someone with table access drops a shard's last entry and moves its head back: the
    # shard still verifies on its own (its new last entry carries a MAC too) ...
    shard = shard_of(subjects[0], 4)
    chain, head = chain_names(shard, 4)
    entries = list(log.shards[shard].entries())
    ddb = stack.clients.dynamodb
    ddb.delete_item(
        TableName=stack.audit_table, Key={"chain": {"S": chain}, "seq": {"N": str(len(entries))}}
    )
    previous = entries[-2]
    ddb.put_item(
        TableName=stack.audit_table,
        Item={
            "chain": {"S": head},
            "seq": {"N": "0"},
            "lastSeq": {"N": str(previous.seq)},
            "hash": {"S": previous.hash},
        },
    )
    report = verify(stack, log)

    # ... but no longer passes through the head the checkpoint committed to.
    assert dict(report.chains)[chain].ok
    assert not report.ok
    assert report.checkpoint_problems == (
        f"checkpoint 1: shard {shard} no longer passes through its entry {len(entries)}",
    )


def test_a_stack_moved_from_one_chain_to_shards_verifies_both_in_order(
    stack: AwsStack, clock: FakeClock
) -> None:
    key = KmsChainKey(stack.clients.kms, key_id=stack.audit_key_id)
    publisher = EventPublisher(stack.clients.events, bus_name=stack.env["PAYHOOK_EVENT_BUS_NAME"])
    before = StreamAuditor(
        ShardedAuditLog(stack.clients.dynamodb, table=stack.audit_table), publisher, key, clock
    )
    after = StreamAuditor(
        ShardedAuditLog(stack.clients.dynamodb, table=stack.audit_table, shards=4),
        publisher,
        key,
        clock,
    )
    received = {"status": "received", "previousStatus": None}
    processed = {"status": "processed", "previousStatus": "received"}
    before.chain([Change("webhook", "wh_moved", "insert", received, "s:1")])
    after.chain([Change("webhook", "wh_moved", "modify", processed, "s:2")])

    stack.clients.dynamodb.put_item(  # the item the trail must end at
        TableName=stack.webhooks_table,
        Item={"webhookId": {"S": "wh_moved"}, "status": {"S": "processed"}},
    )
    log = ShardedAuditLog(stack.clients.dynamodb, table=stack.audit_table, shards=4)
    report = verify(stack, log)

    assert report.ok, report.to_dict()
    assert report.webhooks == 1
    assert dict(report.chains)["main"].entries == 1
    assert sum(r.entries for name, r in report.chains if name.startswith("shard#")) == 1
