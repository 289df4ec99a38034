"""The audit Lambda: stream batches -> authenticated chain and EventBridge, idempotent under
retries; verification also holds every payment row to its events and its audit trail."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from payhook.backends.aws.audit import DynamoAuditLog, DynamoPaymentRows, KmsChainKey
from payhook.backends.aws.clients import AwsClients
from payhook.backends.aws.events import EventPublisher
from payhook.core.audit import AuditEntry, Change
from payhook.errors import ConcurrencyError, ConfigError, StorageUnavailableError
from payhook.runtimes.aws_lambda.audit import StreamAuditor
from payhook.runtimes.aws_lambda.processor import SqsProcessor
from payhook.runtimes.aws_lambda.receiver import Receiver
from payhook.service.audit import record_changes, verify_log
from tests.aws.emulator import AwsStack, load_event, stripe_body, stripe_delivery
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def auditor(stack: AwsStack, clock: FakeClock, **env: str) -> StreamAuditor:
    return StreamAuditor.from_environment({**stack.env, **env}, stack.clients, clock)


def audit_log(stack: AwsStack) -> DynamoAuditLog:
    return DynamoAuditLog(stack.clients.dynamodb, table=stack.audit_table)


def kms_key(stack: AwsStack) -> KmsChainKey:
    """The key as an operator verifying the chain holds it (kms:VerifyMac)."""
    return KmsChainKey(stack.clients.kms, key_id=stack.audit_key_id)


def payment_rows(stack: AwsStack) -> DynamoPaymentRows:
    return DynamoPaymentRows(stack.clients.dynamodb, table=stack.payments_table)


def run_pipeline(stack: AwsStack, clock: FakeClock, *bodies: bytes) -> list[dict[str, Any]]:
    """Receive and process ``bodies``; return the stream records both tables produced."""
    receiver = Receiver.from_environment(stack.env, stack.clients, clock)
    for body in bodies:
        assert receiver.handle(stripe_delivery(body, int(clock.now)))["statusCode"] == 200
    processor = SqsProcessor.from_environment(stack.env, stack.clients, clock)
    assert stack.poll_processor(processor.handle)["batchItemFailures"] == []
    return stack.stream_records(stack.webhooks_table) + stack.stream_records(stack.payments_table)


def test_same_stream_batch_delivered_twice_is_chained_and_published_once(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(
        stack, clock, stripe_body("evt_a", "pi_a"), stripe_body("evt_b", "pi_b", amount=250)
    )
    handler = auditor(stack, clock)

    handler.handle({"Records": records})
    once = list(audit_log(stack).entries())
    handler.handle({"Records": records})

    assert list(audit_log(stack).entries()) == once
    assert len(once) == 6  # per webhook: insert, processed; per payment: insert
    assert verify_log(audit_log(stack), kms_key(stack)).ok
    published = stack.published_events()
    assert sorted(e["detail"]["paymentId"] for e in published) == ["pi_a", "pi_b"]
    assert {e["detail"]["payment"]["amount"] for e in published} == {4999, 250}


def test_batch_split_by_a_retry_chains_each_record_once(stack: AwsStack, clock: FakeClock) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_c", "pi_c"))
    handler = auditor(stack, clock)
    handler.handle({"Records": records[:2]})
    handler.handle({"Records": records})  # bisected retry overlapping the first half
    entries = list(audit_log(stack).entries())
    assert [(e.entity, e.action) for e in entries] == [
        ("webhook", "insert"),
        ("webhook", "modify"),
        ("payment", "insert"),
    ]
    assert len(stack.published_events()) == 1


def test_recorded_stream_batches_are_chained_with_ttl_removal_marked(
    stack: AwsStack, clock: FakeClock
) -> None:
    handler = auditor(stack, clock)
    handler.handle(load_event("dynamodb_stream_webhooks.json"))
    handler.handle(load_event("dynamodb_stream_payments.json"))
    entries = list(audit_log(stack).entries())
    assert [(e.entity, e.action) for e in entries] == [
        ("webhook", "insert"),
        ("webhook", "modify"),
        ("webhook", "remove"),
        ("payment", "insert"),
        ("payment", "modify"),
    ]
    assert entries[2].data["expired"] is True
    assert entries[0].recorded_at.startswith("2023-11-14T22:13:20")
    assert [e["detail"]["status"] for e in stack.published_events()] == [
        "succeeded",
        "partially_refunded",
    ]


def test_large_batch_is_chained_in_several_transactions(stack: AwsStack, clock: FakeClock) -> None:
    for n in range(60):
        stack.clients.dynamodb.put_item(
            TableName=stack.webhooks_table,
            Item={
                "webhookId": {"S": f"wh_{n:03d}"},
                "provider": {"S": "stripe"},
                "eventId": {"S": f"evt_{n}"},
                "eventType": {"S": "charge.succeeded"},
                "status": {"S": "received"},
            },
        )
    auditor(stack, clock).handle({"Records": stack.stream_records(stack.webhooks_table)})
    log = audit_log(stack)
    assert [e.entity_key for e in log.entries()] == [f"wh_{n:03d}" for n in range(60)]
    assert verify_log(log, kms_key(stack)).ok


def test_unavailable_audit_table_raises_so_the_stream_retries(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_d", "pi_d"))
    stack.clients.dynamodb.delete_table(TableName=stack.audit_table)
    with pytest.raises(StorageUnavailableError):
        auditor(stack, clock).handle({"Records": records})


def test_failed_publish_raises_before_chaining_and_the_retry_does_both(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_e", "pi_e"))
    broken = auditor(stack, clock, PAYHOOK_EVENT_BUS_NAME="payhook-no-such-bus")

    with pytest.raises(StorageUnavailableError):
        broken.handle({"Records": records})
    assert list(audit_log(stack).entries()) == []

    auditor(stack, clock).handle({"Records": records})
    assert len(list(audit_log(stack).entries())) == 3
    [event] = stack.published_events()
    assert event["detail"]["paymentId"] == "pi_e"


class MovingHeadLog(DynamoAuditLog):
    """Another writer appends right after each of the first ``races`` head reads."""

    def __init__(self, stack: AwsStack, clock: FakeClock, races: int) -> None:
        super().__init__(stack.clients.dynamodb, table=stack.audit_table)
        self.other = DynamoAuditLog(stack.clients.dynamodb, table=stack.audit_table)
        self.key = kms_key(stack)
        self.clock, self.races, self.reads = clock, races, 0

    def head(self) -> AuditEntry | None:
        head = super().head()
        self.reads += 1
        if self.reads <= self.races:
            other = Change("webhook", f"wh_other_{self.reads}", "insert", {}, f"x:{self.reads}")
            record_changes(self.other, [other], self.key, self.clock)
        return head


def test_moved_head_is_retried_onto_the_new_head(stack: AwsStack, clock: FakeClock) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_f", "pi_f"))
    log = MovingHeadLog(stack, clock, races=2)
    publisher = EventPublisher(stack.clients.events, bus_name=stack.env["PAYHOOK_EVENT_BUS_NAME"])
    sleeps: list[float] = []

    auditor_ = StreamAuditor(log, publisher, kms_key(stack), clock, sleep=sleeps.append)
    auditor_.handle({"Records": records})

    entries = list(audit_log(stack).entries())
    assert [e.entity_key for e in entries[:2]] == ["wh_other_1", "wh_other_2"]
    assert len(entries) == 5
    assert verify_log(audit_log(stack), kms_key(stack)).ok
    assert len(sleeps) == 2


def test_head_that_keeps_moving_gives_up_with_concurrency_error(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_g", "pi_g"))
    log = MovingHeadLog(stack, clock, races=100)
    publisher = EventPublisher(stack.clients.events, bus_name=stack.env["PAYHOOK_EVENT_BUS_NAME"])
    auditor_ = StreamAuditor(
        log, publisher, kms_key(stack), clock, max_conflict_retries=2, sleep=lambda _: None
    )
    with pytest.raises(ConcurrencyError):
        auditor_.handle({"Records": records})
    assert log.reads == 3


class GenerateMacOnly:
    """A KMS client with the audit function's grant: GenerateMac, and nothing else."""

    def __init__(self, kms: Any) -> None:
        self._kms = kms
        self.calls = 0

    def generate_mac(self, **kwargs: Any) -> Any:
        self.calls += 1
        return self._kms.generate_mac(**kwargs)


def test_the_audit_function_needs_only_generate_mac_once_per_append(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_h", "pi_h"))
    kms = GenerateMacOnly(stack.clients.kms)
    clients = AwsClients(
        stack.session, dynamodb=stack.clients.dynamodb, events=stack.clients.events, kms=kms
    )
    StreamAuditor.from_environment(stack.env, clients, clock).handle({"Records": records})

    assert kms.calls == 1  # one append: three entries, one MAC
    entries = list(audit_log(stack).entries())
    assert [e.mac is not None for e in entries] == [False, False, True]
    assert verify_log(audit_log(stack), kms_key(stack)).ok  # checked with kms:VerifyMac


def test_each_batch_logs_its_new_head_for_anchoring(
    stack: AwsStack, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    records = run_pipeline(stack, clock, stripe_body("evt_i", "pi_i"))
    with caplog.at_level(logging.INFO, logger="payhook.aws.audit"):
        auditor(stack, clock).handle({"Records": records})
    [line] = [r for r in caplog.records if r.getMessage() == "stream batch audited"]
    head = audit_log(stack).head()
    assert head is not None
    assert (line.head_seq, line.head_hash) == (head.seq, head.hash)  # type: ignore[attr-defined]


def test_an_audit_key_id_that_is_not_a_kms_key_fails_at_cold_start(
    stack: AwsStack, clock: FakeClock
) -> None:
    with pytest.raises(ConfigError, match="PAYHOOK_AUDIT_KEY_ID: got 'audit-key'"):
        auditor(stack, clock, PAYHOOK_AUDIT_KEY_ID="audit-key")
    env = {k: v for k, v in stack.env.items() if k != "PAYHOOK_AUDIT_KEY_ID"}
    with pytest.raises(ConfigError, match="PAYHOOK_AUDIT_KEY_ID: got nothing"):
        StreamAuditor.from_environment(env, stack.clients, clock)


def test_a_payment_item_edited_without_a_new_version_fails_verification_naming_it(
    stack: AwsStack, clock: FakeClock
) -> None:
    records = run_pipeline(
        stack, clock, stripe_body("evt_j", "pi_j"), stripe_body("evt_k", "pi_k", amount=250)
    )
    handler = auditor(stack, clock)
    handler.handle({"Records": records})
    assert verify_log(audit_log(stack), kms_key(stack), payment_rows(stack)).ok

    stack.clients.dynamodb.update_item(
        TableName=stack.payments_table,
        Key={"provider": {"S": "stripe"}, "paymentId": {"S": "pi_j"}},
        UpdateExpression="SET #s = :refunded, amountRefunded = :all",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":refunded": {"S": "refunded"}, ":all": {"N": "4999"}},
    )
    # The stream delivers the edit; the same version is not an audited change.
    handler.handle({"Records": stack.stream_records(stack.payments_table)})

    report = verify_log(audit_log(stack), kms_key(stack), payment_rows(stack))
    assert report.chain.ok
    assert not report.ok
    assert report.payments == 2
    [problem] = report.problems
    assert problem.payment == "stripe/pi_j"
    assert "status row 'refunded', record 'succeeded'" in problem.reason
