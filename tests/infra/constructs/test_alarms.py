"""Alarms and their topic: failures are reported, retried, dead-lettered and alarmed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cfn import Synthesized, as_list, render

pytestmark = pytest.mark.infra


def alarms_by_name(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: render(a["Properties"])
        for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
    }


def test_errors_are_not_swallowed(synthesized: Synthesized) -> None:
    service = synthesized.stack.service
    suffix = synthesized.suffix
    topic = f"${{{synthesized.logical_id(service.alarms.topic)}}}"
    alarms = alarms_by_name(synthesized)

    def metric(name: str) -> tuple[str, str]:
        return alarms[f"payhook-{name}-{suffix}"]["Namespace"], alarms[f"payhook-{name}-{suffix}"][
            "MetricName"
        ]

    # Failed messages are reported one by one and retried; after 5 receives they are dead
    # letters; every resting place of a failure has an alarm.
    processing = synthesized.properties(service.queues.processing)
    mappings = [
        render(m["Properties"])
        for m in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
    ]
    assert len(mappings) == 3
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)
    assert all("OnFailure" in m["DestinationConfig"] for m in mappings if "StartingPosition" in m)
    assert processing["RedrivePolicy"]["maxReceiveCount"] == 5
    assert metric("dead-letters") == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert metric("queue-age") == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert metric("processor-errors") == ("AWS/Lambda", "Errors")
    assert metric("receiver-5xx") == ("AWS/ApiGateway", "5XXError")
    assert metric("verification-failures") == (f"payhook/{suffix}", "VerificationFailures")
    assert metric("audit-errors") == ("AWS/Lambda", "Errors")
    assert metric("audit-failures") == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarms[f"payhook-dead-letters-{suffix}"]["Threshold"] == 0
    assert alarms[f"payhook-dead-letters-{suffix}"]["ComparisonOperator"] == "GreaterThanThreshold"
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm.get("ActionsEnabled", True) is not False, name


def test_verification_failures_are_counted_from_the_receiver_log(
    synthesized: Synthesized,
) -> None:
    receiver_logs = synthesized.logical_id(synthesized.stack.service.functions.receiver.log_group)
    _, metric_filter = synthesized.only("AWS::Logs::MetricFilter")
    props = render(metric_filter["Properties"])

    assert props["LogGroupName"] == f"${{{receiver_logs}}}"
    assert props["FilterPattern"] == '"verification failed"'
    [transformation] = props["MetricTransformations"]
    assert transformation["MetricName"] == "VerificationFailures"
    assert transformation["MetricNamespace"] == f"payhook/{synthesized.suffix}"


def test_alarms_can_publish_to_the_encrypted_topic(synthesized: Synthesized) -> None:
    topic_id, topic = synthesized.only("AWS::SNS::Topic")
    key_id, _ = synthesized.data_key()
    _, policy = synthesized.only("AWS::SNS::TopicPolicy")
    statements = render(policy["Properties"]["PolicyDocument"]["Statement"])
    publishers = [
        s
        for s in statements
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]

    assert render(topic["Properties"]["KmsMasterKeyId"]) == f"${{{key_id}.Arn}}"
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    [publisher] = publishers
    assert as_list(publisher["Action"]) == ["sns:Publish"]
    assert publisher["Resource"] == f"${{{topic_id}}}"
    source = publisher["Condition"]["ArnLike"]["aws:SourceArn"]
    pattern = source.rsplit(":alarm:", 1)[1]
    prefix, _, suffix = pattern.partition("*")
    assert all(
        name.startswith(prefix) and name.endswith(suffix) for name in alarms_by_name(synthesized)
    )


def test_alert_email_subscribes_to_the_topic_only_when_configured(
    dev: Synthesized, production: Synthesized
) -> None:
    assert dev.resources("AWS::SNS::Subscription") == {}
    _, subscription = production.only("AWS::SNS::Subscription")
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "payments-oncall@example.com"
