"""The functions: runtime, tracing, logs, contract, hand-offs and batching windows."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cfn import Synthesized, allows, render

pytestmark = pytest.mark.infra

CONTRACT_VARIABLES = {
    "PAYHOOK_WEBHOOKS_TABLE",
    "PAYHOOK_PAYMENTS_TABLE",
    "PAYHOOK_AUDIT_TABLE",
    "PAYHOOK_QUEUE_URL",
    "PAYHOOK_EVENT_BUS_NAME",
    "PAYHOOK_PROVIDERS_SECRET_ARN",
    "PAYHOOK_ENVIRONMENT",
    "PAYHOOK_BODY_LIMIT_BYTES",
    "PAYHOOK_RAW_PAYLOAD_RETENTION_DAYS",
    "PAYHOOK_SECRET_CACHE_SECONDS",
    "PAYHOOK_MAX_RECEIVE_COUNT",
    "POWERTOOLS_SERVICE_NAME",
}


def ref(synthesized: Synthesized, construct: Any, attribute: str | None = None) -> str:
    logical_id = synthesized.logical_id(construct)
    return f"${{{logical_id}.{attribute}}}" if attribute else f"${{{logical_id}}}"


def mappings(synthesized: Synthesized, function: Any) -> list[dict[str, Any]]:
    name = ref(synthesized, function)
    return [
        render(m["Properties"])
        for m in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if render(m["Properties"]["FunctionName"]) == name
    ]


def test_no_reserved_concurrency_by_default(dev: Synthesized, production: Synthesized) -> None:
    # Reserved concurrency is taken from the account's unreserved pool; a fixed value fails to
    # deploy in small accounts, so it is opt-in (reservedConcurrency=20 in the production synth).
    dev_functions = dev.resources("AWS::Lambda::Function").values()
    production_functions = production.resources("AWS::Lambda::Function").values()

    assert len(dev_functions) == 4
    assert all("ReservedConcurrentExecutions" not in f["Properties"] for f in dev_functions)
    reserved = {
        f["Properties"]["FunctionName"]: f["Properties"].get("ReservedConcurrentExecutions")
        for f in production_functions
    }
    assert reserved == {
        "payhook-receiver-prod": 20,
        "payhook-processor-prod": 20,
        "payhook-audit-prod": 20,
        "payhook-sweeper-prod": None,  # one run at a time needs no reservation
    }


def test_functions_run_python_on_arm64_with_active_tracing(synthesized: Synthesized) -> None:
    for function in synthesized.resources("AWS::Lambda::Function").values():
        props = function["Properties"]
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] in {"python3.12", "python3.13"}
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_each_function_logs_to_its_own_encrypted_log_group(synthesized: Synthesized) -> None:
    key_id, _ = synthesized.data_key()
    log_groups = synthesized.resources("AWS::Logs::LogGroup")
    used = set()
    for function in synthesized.stack.service.functions.all:
        target = render(synthesized.properties(function.function)["LoggingConfig"]["LogGroup"])
        log_group_id = target.strip("${}")
        log_group = log_groups[log_group_id]["Properties"]
        assert (
            log_group["LogGroupName"]
            == f"/payhook/{synthesized.suffix}/lambda/{function.node.id.lower()}"
        )
        assert render(log_group["KmsKeyId"]) == f"${{{key_id}.Arn}}"
        assert log_group["RetentionInDays"] == synthesized.settings.effective_log_retention_days
        assert allows(
            synthesized.policy_statements(function.role),
            "logs:PutLogEvents",
            f"${{{log_group_id}.Arn}}",
        )
        used.add(log_group_id)
    assert len(used) == 4


def test_handlers_and_environment_follow_the_contract(synthesized: Synthesized) -> None:
    service = synthesized.stack.service
    for function in service.functions.all:
        props = synthesized.properties(function.function)
        variables = render(props["Environment"]["Variables"])
        component = function.node.id.lower()

        assert props["Handler"] == f"payhook.runtimes.aws_lambda.{component}.handler"
        # Only the audit function authenticates the chain (see test_audit_key.py).
        own = {
            service.functions.audit: {"PAYHOOK_AUDIT_KEY_ID", "PAYHOOK_AUDIT_SHARDS"},
            service.functions.sweeper: {"PAYHOOK_SWEEP_AFTER_SECONDS"},
        }.get(function, set())
        assert set(variables) == CONTRACT_VARIABLES | own
        assert variables["PAYHOOK_WEBHOOKS_TABLE"] == ref(synthesized, service.tables.webhooks)
        assert variables["PAYHOOK_PAYMENTS_TABLE"] == ref(synthesized, service.tables.payments)
        assert variables["PAYHOOK_AUDIT_TABLE"] == ref(synthesized, service.tables.audit)
        assert variables["PAYHOOK_QUEUE_URL"] == ref(synthesized, service.queues.processing)
        assert variables["PAYHOOK_EVENT_BUS_NAME"] == ref(synthesized, service.bus)
        assert variables["PAYHOOK_PROVIDERS_SECRET_ARN"] == ref(synthesized, service.secret)
        assert variables["PAYHOOK_ENVIRONMENT"] == synthesized.suffix
        assert variables["PAYHOOK_BODY_LIMIT_BYTES"] == "1048576"
        if function is service.functions.audit:
            assert variables["PAYHOOK_AUDIT_SHARDS"] == "16"  # the default shard count
        assert variables["POWERTOOLS_SERVICE_NAME"] == "payhook"
        assert int(variables["PAYHOOK_RAW_PAYLOAD_RETENTION_DAYS"]) > 0
        assert int(variables["PAYHOOK_SECRET_CACHE_SECONDS"]) >= 0
        # The processor must know the redrive's limit to mark its last attempt's webhook dead.
        limits = {
            q["Properties"]["RedrivePolicy"]["maxReceiveCount"]
            for q in synthesized.resources("AWS::SQS::Queue").values()
            if "RedrivePolicy" in q["Properties"]
        }
        assert limits == {int(variables["PAYHOOK_MAX_RECEIVE_COUNT"])}


def test_receiver_hands_off_to_processor_through_sqs(synthesized: Synthesized) -> None:
    service = synthesized.stack.service
    receiver, processor = service.functions.receiver, service.functions.processor
    queue_arn = ref(synthesized, service.queues.processing, "Arn")

    # The receiver only sends; the processor is driven by the queue, never invoked directly.
    assert allows(synthesized.policy_statements(receiver.role), "sqs:SendMessage", queue_arn)
    assert mappings(synthesized, receiver.function) == []
    [mapping] = mappings(synthesized, processor.function)
    assert mapping["EventSourceArn"] == queue_arn
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 10}
    assert 1 <= mapping["BatchSize"] <= 10
    assert not allows(synthesized.policy_statements(processor.role), "sqs:SendMessage", queue_arn)
    invoked_by_api = [
        render(p["Properties"]["FunctionName"])
        for p in synthesized.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert invoked_by_api
    assert set(invoked_by_api) == {ref(synthesized, receiver.function, "Arn")}


def test_audit_function_writes_to_audit_table_and_fails_loudly(synthesized: Synthesized) -> None:
    service = synthesized.stack.service
    audit = service.functions.audit
    statements = synthesized.policy_statements(audit.role)
    failures_arn = ref(synthesized, service.queues.audit_failures, "Arn")

    assert allows(statements, "dynamodb:PutItem", ref(synthesized, service.tables.audit, "Arn"))
    assert allows(statements, "events:PutEvents", ref(synthesized, service.bus, "Arn"))
    sources = {m["EventSourceArn"]: m for m in mappings(synthesized, audit.function)}
    assert set(sources) == {
        ref(synthesized, service.tables.webhooks, "StreamArn"),
        ref(synthesized, service.tables.payments, "StreamArn"),
    }
    for mapping in sources.values():
        assert mapping["StartingPosition"] == "TRIM_HORIZON"
        assert mapping["BisectBatchOnFunctionError"] is True
        assert 0 <= mapping["MaximumRetryAttempts"] <= 10  # bounded; -1 would retry forever
        assert 60 <= mapping["MaximumRecordAgeInSeconds"] < 24 * 3600  # within stream retention
        assert mapping["ParallelizationFactor"] == 1  # the chain is appended in order
        assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": failures_arn}}
    assert allows(statements, "sqs:SendMessage", failures_arn)
    alarmed = [
        render(a["Properties"].get("Dimensions"))
        for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
    ]
    failures_name = ref(synthesized, service.queues.audit_failures, "QueueName")
    assert [{"Name": "QueueName", "Value": failures_name}] in alarmed
    assert [{"Name": "FunctionName", "Value": ref(synthesized, audit.function)}] in alarmed


def test_event_sources_gather_batches_within_the_latency_targets(
    synthesized: Synthesized,
) -> None:
    # docs/deploy.md: ledger within 5 s, events and audit entries within 15 s.
    service = synthesized.stack.service
    [queue] = mappings(synthesized, service.functions.processor.function)
    streams = mappings(synthesized, service.functions.audit.function)

    assert queue["MaximumBatchingWindowInSeconds"] == 2
    assert len(streams) == 2
    assert all(m["MaximumBatchingWindowInSeconds"] == 5 for m in streams)
    assert all(m["BatchSize"] == 100 for m in streams)
