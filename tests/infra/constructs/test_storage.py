"""The DynamoDB tables match the contract shared with the AWS backend."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.infra.cfn import Synthesized, render

pytestmark = pytest.mark.infra


def table(synthesized: Synthesized, name: str) -> dict[str, Any]:
    tables = synthesized.stack.service.tables
    props: dict[str, Any] = synthesized.properties(getattr(tables, name))
    return props


def keys(props: dict[str, Any]) -> dict[str, tuple[str, str]]:
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    return {
        k["KeyType"]: (k["AttributeName"], types[k["AttributeName"]]) for k in props["KeySchema"]
    }


def test_webhooks_table_has_the_contract_keys_ttl_stream_and_its_indexes(
    synthesized: Synthesized,
) -> None:
    webhooks = table(synthesized, "webhooks")

    assert webhooks["TableName"] == f"payhook-webhooks-{synthesized.suffix}"
    assert keys(webhooks) == {"HASH": ("webhookId", "S")}
    assert webhooks["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert webhooks["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    indexes = {i["IndexName"]: i for i in webhooks["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"byStatus", "byUnsignedEventId"}
    types = {a["AttributeName"]: a["AttributeType"] for a in webhooks["AttributeDefinitions"]}
    by_status = indexes["byStatus"]
    assert [(k["AttributeName"], k["KeyType"]) for k in by_status["KeySchema"]] == [
        ("statusShard", "HASH"),  # "<status>#<n>": write-sharded, no hot key per status
        ("receivedAt", "RANGE"),
    ]
    assert (types["statusShard"], types["receivedAt"]) == ("S", "N")
    assert "status" not in types  # the status itself is no key of any index
    assert by_status["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # Sparse: only deliveries whose event id the provider does not sign carry the key.
    unsigned = indexes["byUnsignedEventId"]
    assert [(k["AttributeName"], k["KeyType"]) for k in unsigned["KeySchema"]] == [
        ("unsignedEventKey", "HASH")
    ]
    assert types["unsignedEventKey"] == "S"
    assert unsigned["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_payments_and_audit_tables_have_the_contract_keys(synthesized: Synthesized) -> None:
    payments, audit = table(synthesized, "payments"), table(synthesized, "audit")

    assert keys(payments) == {"HASH": ("provider", "S"), "RANGE": ("paymentId", "S")}
    assert payments["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert keys(audit) == {"HASH": ("chain", "S"), "RANGE": ("seq", "N")}


def test_every_table_is_on_demand_key_encrypted_and_recoverable(synthesized: Synthesized) -> None:
    key_id, _ = synthesized.data_key()
    tables = synthesized.resources("AWS::DynamoDB::Table")

    assert len(tables) == 3
    synthesized.assertions.all_resources_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {
                "SSEEnabled": True,
                "SSEType": "KMS",
                "KMSMasterKeyId": Match.any_value(),
            },
        },
    )
    for resource in tables.values():
        sse = resource["Properties"]["SSESpecification"]
        assert render(sse["KMSMasterKeyId"]) == f"${{{key_id}.Arn}}"
