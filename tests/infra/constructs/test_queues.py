"""SQS queues: encrypted, TLS-only, redriven to dead letters kept 14 days."""

from __future__ import annotations

import pytest

from tests.infra.cfn import Synthesized, as_list, render

pytestmark = pytest.mark.infra

FOURTEEN_DAYS = 14 * 24 * 3600


def test_every_queue_is_key_encrypted_and_refuses_plain_http(synthesized: Synthesized) -> None:
    key_id, _ = synthesized.data_key()
    queues = synthesized.resources("AWS::SQS::Queue")
    policies = [
        render(p["Properties"]) for p in synthesized.resources("AWS::SQS::QueuePolicy").values()
    ]

    assert len(queues) == 3
    for logical_id, queue in queues.items():
        assert render(queue["Properties"]["KmsMasterKeyId"]) == f"${{{key_id}.Arn}}"
        denies_insecure = [
            statement
            for policy in policies
            if f"${{{logical_id}}}" in policy["Queues"]
            for statement in policy["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
            and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies_insecure, logical_id


def test_processing_queue_redrives_to_dead_letters_after_five_receives(
    synthesized: Synthesized,
) -> None:
    queues = synthesized.stack.service.queues
    processing = synthesized.properties(queues.processing)
    dead_letters = synthesized.properties(queues.dead_letters)

    redrive = render(processing["RedrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": f"${{{synthesized.logical_id(queues.dead_letters)}.Arn}}",
        "maxReceiveCount": 5,
    }
    assert dead_letters["MessageRetentionPeriod"] == FOURTEEN_DAYS
    assert "RedrivePolicy" not in dead_letters


def test_visibility_timeout_is_at_least_six_processor_timeouts(synthesized: Synthesized) -> None:
    service = synthesized.stack.service
    processing = synthesized.properties(service.queues.processing)
    processor = synthesized.properties(service.functions.processor.function)

    assert processing["VisibilityTimeout"] >= 6 * processor["Timeout"]


def test_audit_failures_are_kept_as_long_as_dead_letters(synthesized: Synthesized) -> None:
    audit_failures = synthesized.properties(synthesized.stack.service.queues.audit_failures)

    assert audit_failures["MessageRetentionPeriod"] == FOURTEEN_DAYS
    assert as_list(audit_failures["QueueName"]) == [f"payhook-audit-failures-{synthesized.suffix}"]
