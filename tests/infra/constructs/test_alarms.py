"""Alarms and their topic: failures are reported, retried, dead-lettered and alarmed."""

from __future__ import annotations

from typing import Any

import pytest

from payhook.runtimes.aws_lambda.receiver import PROVIDERS_UNUSABLE
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


@pytest.mark.parametrize(
    ("metric_name", "phrase"),
    [
        ("VerificationFailures", '"verification failed"'),
        ("ProviderSecretFailures", f'"{PROVIDERS_UNUSABLE}"'),  # what the receiver logs
    ],
)
def test_refusals_are_counted_from_the_receiver_log(
    synthesized: Synthesized, metric_name: str, phrase: str
) -> None:
    receiver_logs = synthesized.logical_id(synthesized.stack.service.functions.receiver.log_group)
    filters = {
        f["Properties"]["MetricTransformations"][0]["MetricName"]: render(f["Properties"])
        for f in synthesized.resources("AWS::Logs::MetricFilter").values()
    }
    props = filters[metric_name]

    assert props["LogGroupName"] == f"${{{receiver_logs}}}"
    assert props["FilterPattern"] == phrase
    [transformation] = props["MetricTransformations"]
    assert transformation["MetricNamespace"] == f"payhook/{synthesized.suffix}"


def test_every_way_to_lose_delay_or_refuse_a_webhook_has_an_alarm(
    synthesized: Synthesized,
) -> None:
    service, suffix = synthesized.stack.service, synthesized.suffix
    alarms = alarms_by_name(synthesized)

    def ref(construct: object, attribute: str = "") -> str:
        logical_id = synthesized.logical_id(construct)
        return f"${{{logical_id}.{attribute}}}" if attribute else f"${{{logical_id}}}"

    def watches(name: str) -> tuple[str, str, list[dict[str, str]], float]:
        alarm = alarms[f"payhook-{name}-{suffix}"]
        dimensions = alarm.get("Dimensions", [])
        return (alarm["Namespace"], alarm["MetricName"], dimensions, alarm["Threshold"])

    functions, queues = service.functions, service.queues
    assert watches("audit-iterator-age") == (
        "AWS/Lambda",
        "IteratorAge",
        [{"Name": "FunctionName", "Value": ref(functions.audit.function)}],
        600_000,  # milliseconds: 10 minutes, hours before the 6 h that give records up
    )
    assert watches("dead-letter-age") == (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        [{"Name": "QueueName", "Value": ref(queues.dead_letters, "QueueName")}],
        7 * 86_400,  # dead letters expire at 14 days
    )
    assert watches("audit-failures-sent") == (
        "AWS/SQS",
        "NumberOfMessagesSent",
        [{"Name": "QueueName", "Value": ref(queues.audit_failures, "QueueName")}],
        0,
    )
    assert watches("alert-deliveries") == (
        "AWS/SNS",
        "NumberOfNotificationsFailed",
        [{"Name": "TopicName", "Value": ref(service.alarms.topic, "TopicName")}],
        0,
    )
    namespace, metric, dimensions, threshold = watches("waf-blocked")
    assert (namespace, metric, threshold) == ("AWS/WAFV2", "BlockedRequests", 100)
    assert {"Name": "WebACL", "Value": f"payhook-waf-{suffix}"} in dimensions
    assert {"Name": "Rule", "Value": "ALL"} in dimensions
    assert watches("api-4xx")[1:] == ("4XXError", watches("receiver-5xx")[2], 100)
    assert watches("provider-secret")[:2] == (f"payhook/{suffix}", "ProviderSecretFailures")
    assert watches("sweeper-errors")[:3] == (
        "AWS/Lambda",
        "Errors",
        [{"Name": "FunctionName", "Value": ref(functions.sweeper.function)}],
    )
    for function in functions.all:
        name = function.node.id.lower()
        assert watches(f"{name}-throttles") == (
            "AWS/Lambda",
            "Throttles",
            [{"Name": "FunctionName", "Value": ref(function.function)}],
            0,
        )
        assert alarms[f"payhook-{name}-throttles-{suffix}"]["ComparisonOperator"] == (
            "GreaterThanThreshold"
        )
    assert len(alarms) == 19


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
