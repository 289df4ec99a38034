"""The customer-managed key: rotation, alias, and a key policy for every service using it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cfn import Synthesized, as_list, render

pytestmark = pytest.mark.infra

# Where each resource type names its KMS key.
KEY_PROPERTIES = {
    "AWS::DynamoDB::Table": ("SSESpecification", "KMSMasterKeyId"),
    "AWS::SQS::Queue": ("KmsMasterKeyId",),
    "AWS::SNS::Topic": ("KmsMasterKeyId",),
    "AWS::Lambda::Function": ("KmsKeyArn",),
    "AWS::Logs::LogGroup": ("KmsKeyId",),
    "AWS::SecretsManager::Secret": ("KmsKeyId",),
    "AWS::Events::EventBus": ("KmsKeyIdentifier",),
}
VIA_SERVICE = {
    "AWS::DynamoDB::Table": "dynamodb",
    "AWS::SQS::Queue": "sqs",
    "AWS::Lambda::Function": "lambda",
    "AWS::SecretsManager::Secret": "secretsmanager",
}


def key_statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    _, key = synthesized.data_key()
    statements: list[dict[str, Any]] = render(key["Properties"]["KeyPolicy"]["Statement"])
    return statements


def service_statements(synthesized: Synthesized, principal: str) -> list[dict[str, Any]]:
    return [
        s
        for s in key_statements(synthesized)
        if s["Effect"] == "Allow" and principal in as_list(s["Principal"].get("Service", []))
    ]


def users_of_the_key(synthesized: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    key_id, _ = synthesized.data_key()
    users = []
    for resource_type, path in KEY_PROPERTIES.items():
        for resource in synthesized.resources(resource_type).values():
            value: Any = resource["Properties"]
            for part in path:
                value = value.get(part, {}) if isinstance(value, dict) else {}
            if key_id in str(render(value)):
                users.append((resource_type, resource))
    return users


def test_kms_key_policy_allows_every_service_that_uses_it(synthesized: Synthesized) -> None:
    users = users_of_the_key(synthesized)
    assert {resource_type for resource_type, _ in users} == set(KEY_PROPERTIES)

    via = [
        s for s in key_statements(synthesized) if "kms:ViaService" in str(s.get("Condition", {}))
    ]
    via_services = {
        str(service).split(".")[0]
        for s in via
        for service in as_list(s["Condition"]["StringEquals"]["kms:ViaService"])
    }
    log_arns = {
        arn
        for s in service_statements(synthesized, "logs.${AWS::Region}.amazonaws.com")
        + service_statements(synthesized, "logs.us-east-1.amazonaws.com")
        for arn in as_list(s["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"])
    }
    for resource_type, resource in users:
        if resource_type in VIA_SERVICE:
            assert VIA_SERVICE[resource_type] in via_services, resource_type
        elif resource_type == "AWS::Logs::LogGroup":
            name = render(resource["Properties"]["LogGroupName"])
            assert any(arn.endswith(f":log-group:{name}") for arn in log_arns), name
        elif resource_type == "AWS::SNS::Topic":
            # Alarms publish to the topic as the CloudWatch service, not through a role.
            [statement] = service_statements(synthesized, "cloudwatch.amazonaws.com")
            assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(as_list(statement["Action"]))
            assert ":alarm:payhook-*-" in statement["Condition"]["ArnLike"]["aws:SourceArn"]
        elif resource_type == "AWS::Events::EventBus":
            [statement] = service_statements(synthesized, "events.amazonaws.com")
            bus_name = resource["Properties"]["Name"]
            condition = statement["Condition"]["StringEquals"]
            assert condition["aws:SourceArn"].endswith(f":event-bus/{bus_name}")
            assert {"kms:Decrypt", "kms:GenerateDataKey"} <= set(as_list(statement["Action"]))


def test_cloudwatch_logs_may_use_the_key_only_for_payhook_log_groups(
    synthesized: Synthesized,
) -> None:
    statements = [
        s
        for s in key_statements(synthesized)
        if any(str(p).startswith("logs.") for p in as_list(s["Principal"].get("Service", [])))
    ]
    assert len(statements) == 1
    arns = as_list(statements[0]["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"])
    assert len(arns) == len(synthesized.resources("AWS::Logs::LogGroup"))
    assert all(":log-group:" in arn and "*" not in arn for arn in arns)


def test_key_rotates_and_has_a_suffixed_alias(synthesized: Synthesized) -> None:
    key_id, key = synthesized.data_key()
    [alias] = [
        a
        for a in synthesized.resources("AWS::KMS::Alias").values()
        if render(a["Properties"]["TargetKeyId"]) == f"${{{key_id}.Arn}}"
    ]

    assert key["Properties"]["EnableKeyRotation"] is True
    assert alias["Properties"]["AliasName"] == f"alias/payhook-key-{synthesized.suffix}"
    assert render(alias["Properties"]["TargetKeyId"]) == f"${{{key_id}.Arn}}"
