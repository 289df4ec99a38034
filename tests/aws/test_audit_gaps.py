"""No audit entry lost in silence: a stream batch that never reached the chain is a gap that
``payhook audit verify`` names, and ``payhook audit repair`` closes with late entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from payhook.backends.aws.shards import ShardedAuditLog
from payhook.core.model import webhook_id_for
from payhook.runtimes.aws_lambda.audit import StreamAuditor
from tests.aws.emulator import AwsStack, stripe_body
from tests.aws.flows import deliver, make_processor
from tests.aws.test_cli import Cli, write_config
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def drop_to_audit_failures(stack: AwsStack, records: list[dict[str, Any]]) -> None:
    """What Lambda does with a stream batch that failed every retry: its on-failure
    destination gets the batch's position, never its records."""
    sqs = stack.clients.sqs
    url = sqs.create_queue(QueueName="payhook-audit-failures")["QueueUrl"]
    sequence = [r["dynamodb"]["SequenceNumber"] for r in records]
    info = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001",
            "startSequenceNumber": min(sequence),
            "endSequenceNumber": max(sequence),
            "batchSize": len(records),
        },
    }
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(info))


def stream(stack: AwsStack) -> list[dict[str, Any]]:
    return stack.stream_records(stack.webhooks_table) + stack.stream_records(stack.payments_table)


@pytest.mark.parametrize("shards", [1, 4])
def test_a_dropped_stream_batch_is_reported_then_repaired_then_verifies(
    tmp_path: Path,
    stack: AwsStack,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    shards: int,
) -> None:
    stack.env["PAYHOOK_AUDIT_SHARDS"] = str(shards)
    cli = Cli(write_config(tmp_path, stack, shards=shards), capsys)
    auditor = StreamAuditor.from_environment(stack.env, stack.clients, clock)
    deliver(stack, clock, stripe_body("evt_gap", "pi_gap", amount=1500))
    deliver(stack, clock, stripe_body("evt_kept", "pi_kept", amount=900))
    auditor.handle({"Records": stream(stack)})  # both inserts chained
    processor = make_processor(stack, clock)
    assert stack.poll_processor(processor.handle)["batchItemFailures"] == []
    records = stream(stack)
    gap_id = webhook_id_for("stripe", "evt_gap")
    lost = [r for r in records if _subject(r) in (gap_id, "pi_gap")]
    kept = [r for r in records if r not in lost]
    assert len(lost) == 2  # the webhook's received -> processed, and the payment's insert
    auditor.handle({"Records": kept})
    drop_to_audit_failures(stack, lost)

    code, out, _ = cli("audit", "verify")

    assert code == 1
    assert f"webhook {gap_id}: no audit entry for changes from received to processed" in out
    assert "payment stripe/pi_gap: no audit entry for version 1" in out
    assert "pi_kept" not in out
    assert webhook_id_for("stripe", "evt_kept") not in out
    assert "2 with changes missing from the chain, 0 that do not match" in out

    code, out, err = cli("audit", "repair")

    assert code == 0, out + err
    assert "repaired: 2" in out
    code, out, _ = cli("audit", "verify")
    assert code == 0, out
    assert "0 with changes missing" in out
    sharded = ShardedAuditLog(stack.clients.dynamodb, table=stack.audit_table, shards=shards)
    late = [e for s in sharded.shards for e in s.entries() if e.action == "late"]
    assert sorted(e.entity_key for e in late) == sorted([gap_id, "stripe/pi_gap"])
    assert all(e.data["late"] is True and e.data["lost"] for e in late)
    assert cli("audit", "repair")[1].endswith("repaired: 0\n")

    # The batch was late, not lost after all: chained now, it changes nothing.
    auditor.handle({"Records": lost})
    code, out, _ = cli("audit", "verify")
    assert code == 0, out
    # The authenticated head (the checkpoint chain's when sharded) anchors the whole chain.
    anchor = cli.json("audit", "head")["anchor"]
    assert cli("audit", "verify", "--expect-head", anchor)[0] == 0
    seq = anchor.split(":")[0]
    assert cli("audit", "verify", "--expect-head", f"{seq}:{'0' * 64}")[0] == 1


def test_repair_refuses_a_broken_chain_and_appends_nothing(
    tmp_path: Path, stack: AwsStack, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(write_config(tmp_path, stack), capsys)
    deliver(stack, clock, stripe_body("evt_edit", "pi_edit"))
    StreamAuditor.from_environment(stack.env, stack.clients, clock).handle(
        {"Records": stream(stack)}
    )
    # Someone with table access but not the key rewrites the entry.
    stack.clients.dynamodb.update_item(
        TableName=stack.audit_table,
        Key={"chain": {"S": "main"}, "seq": {"N": "1"}},
        UpdateExpression="SET entityKey = :k",
        ExpressionAttributeValues={":k": {"S": "wh_forged"}},
    )
    code, out, _ = cli("audit", "repair")
    assert code == 1
    assert "audit chain main BROKEN at entry 1: entry content was altered" in out
    assert "not repaired" in out
    log = ShardedAuditLog(stack.clients.dynamodb, table=stack.audit_table)
    assert [e.action for e in log.shards[0].entries()] == ["insert"]  # nothing appended


def test_repair_on_the_embedded_database_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "payhook.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "p.db"}"\n')
    code, _, err = Cli(config, capsys)("audit", "repair")
    assert code == 2
    assert "for the AWS backend" in err


def _subject(record: dict[str, Any]) -> str:
    keys = record["dynamodb"]["Keys"]
    return str((keys.get("webhookId") or keys.get("paymentId"))["S"])
