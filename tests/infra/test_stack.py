"""The stack as a whole: names, retention, outputs."""

from __future__ import annotations

import pytest

from tests.infra.cfn import Synthesized, render
from tests.infra.conftest import PRODUCTION_DOMAIN

pytestmark = pytest.mark.infra

# The property holding the physical name of each named resource type.
NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Logs::MetricFilter": "FilterName",
    "AWS::ApiGateway::RestApi": "Name",
    "AWS::ApiGateway::RequestValidator": "Name",
    "AWS::WAFv2::WebACL": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Scheduler::Schedule": "Name",
}
STATEFUL = (
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::KMS::Key",
    "AWS::Logs::LogGroup",
    "AWS::SecretsManager::Secret",
    "AWS::Events::EventBus",
)


def test_every_named_resource_has_the_environment_suffix(synthesized: Synthesized) -> None:
    rest_api_id, _ = synthesized.only("AWS::ApiGateway::RestApi")
    checked = 0
    for resource_type, name_property in NAME_PROPERTIES.items():
        resources = synthesized.resources(resource_type)
        assert resources, f"no {resource_type} in the template"
        for logical_id, resource in resources.items():
            name = render(resource["Properties"].get(name_property))
            assert isinstance(name, str), f"{logical_id} has no {name_property}"
            if name == f"API-Gateway-Execution-Logs_${{{rest_api_id}}}/v1":
                continue  # the one name API Gateway dictates; it carries the API's id
            assert synthesized.suffix in name, f"{logical_id}: {name!r}"
            checked += 1
    assert checked >= 25


def test_two_environments_share_no_physical_name(dev: Synthesized, production: Synthesized) -> None:
    def names(synthesized: Synthesized) -> set[str]:
        return {
            str(render(resource["Properties"][prop]))
            for resource_type, prop in NAME_PROPERTIES.items()
            for resource in synthesized.resources(resource_type).values()
            if isinstance(render(resource["Properties"][prop]), str)
            and "${" not in str(render(resource["Properties"][prop]))
        }

    assert names(dev)
    assert not names(dev) & names(production)
    assert dev.stack.stack_name != production.stack.stack_name


def test_dev_resources_are_destroyed_with_the_stack(dev: Synthesized) -> None:
    for resource_type in STATEFUL:
        for logical_id, resource in dev.resources(resource_type).items():
            assert resource.get("DeletionPolicy") == "Delete", logical_id
    for table in dev.resources("AWS::DynamoDB::Table").values():
        assert not table["Properties"].get("DeletionProtectionEnabled")
    assert not dev.stack.termination_protection


def test_production_retains_data_and_protects_it_from_deletion(production: Synthesized) -> None:
    for resource_type in STATEFUL:
        resources = production.resources(resource_type)
        assert resources
        for logical_id, resource in resources.items():
            assert resource.get("DeletionPolicy") == "Retain", logical_id
            assert resource.get("UpdateReplacePolicy") == "Retain", logical_id
    for table in production.resources("AWS::DynamoDB::Table").values():
        assert table["Properties"]["DeletionProtectionEnabled"] is True
    _, key = production.data_key()
    assert key["Properties"]["PendingWindowInDays"] == 30
    assert production.stack.termination_protection
    for log_group in production.resources("AWS::Logs::LogGroup").values():
        assert log_group["Properties"]["RetentionInDays"] == 365


def test_outputs_name_what_operators_need(synthesized: Synthesized) -> None:
    outputs = {name: render(o["Value"]) for name, o in synthesized.template["Outputs"].items()}
    service = synthesized.stack.service

    def ref(construct: object) -> str:
        return f"${{{synthesized.logical_id(construct)}}}"

    assert outputs["WebhooksTableName"] == ref(service.tables.webhooks)
    assert outputs["PaymentsTableName"] == ref(service.tables.payments)
    assert outputs["AuditTableName"] == ref(service.tables.audit)
    assert outputs["ProcessingQueueUrl"] == ref(service.queues.processing)  # what a redrive
    assert outputs["DeadLetterQueueUrl"] == ref(service.queues.dead_letters)  # needs
    assert outputs["AlertTopicArn"] == ref(service.alarms.topic)  # Ref is the ARN
    rest_api_id, _ = synthesized.only("AWS::ApiGateway::RestApi")
    stage_id, _ = synthesized.only("AWS::ApiGateway::Stage")
    assert rest_api_id in outputs["ApiEndpoint"]
    endpoint = outputs["WebhookUrl"]
    if synthesized.settings.domain_name is None:
        assert endpoint.startswith(f"https://${{{rest_api_id}}}.execute-api.")
        assert endpoint.endswith(f"/${{{stage_id}}}/webhook/{{provider}}")
        assert "CustomDomainTarget" not in outputs
    else:  # the production synth: providers keep this URL when the API is replaced
        assert endpoint == f"https://{PRODUCTION_DOMAIN}/webhook/{{provider}}"
        domain_id, _ = synthesized.only("AWS::ApiGateway::DomainName")
        assert outputs["CustomDomainTarget"] == f"${{{domain_id}.RegionalDomainName}}"
        assert outputs["CustomDomainHostedZoneId"] == f"${{{domain_id}.RegionalHostedZoneId}}"
