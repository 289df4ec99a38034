"""Least privilege: each function may make the DynamoDB calls its code makes, and no other."""

from __future__ import annotations

from typing import Any

import pytest

from infra.grants import grant_items
from tests.infra.cfn import Synthesized, allows, as_list

pytestmark = pytest.mark.infra


def ref(synthesized: Synthesized, construct: Any, attribute: str | None = None) -> str:
    logical_id = synthesized.logical_id(construct)
    return f"${{{logical_id}.{attribute}}}" if attribute else f"${{{logical_id}}}"


def dynamodb_access(synthesized: Synthesized, role: Any) -> dict[str, set[str]]:
    """Resource -> the dynamodb actions the role may call on it (streams excluded: the
    event sources read them)."""
    access: dict[str, set[str]] = {}
    for statement in synthesized.policy_statements(role):
        actions = {a for a in as_list(statement["Action"]) if a.startswith("dynamodb:")}
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            if actions and not resource.endswith(".StreamArn}") and resource != "*":
                access.setdefault(resource, set()).update(actions)
    return access


def test_each_function_gets_only_the_item_calls_its_code_makes(synthesized: Synthesized) -> None:
    service = synthesized.stack.service
    tables, functions = service.tables, service.functions
    webhooks, payments = (
        ref(synthesized, tables.webhooks, "Arn"),
        ref(synthesized, tables.payments, "Arn"),
    )
    audit = ref(synthesized, tables.audit, "Arn")

    assert dynamodb_access(synthesized, functions.receiver.role) == {
        webhooks: {"dynamodb:PutItem", "dynamodb:UpdateItem"},
        f"{webhooks}/index/byUnsignedEventId": {"dynamodb:Query"},
    }
    assert dynamodb_access(synthesized, functions.processor.role) == {
        webhooks: {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        payments: {"dynamodb:GetItem", "dynamodb:PutItem"},
    }
    # The head (Query), the markers (BatchGetItem), the entries (PutItem in a transaction);
    # nothing on the webhooks and payments tables, whose changes arrive on the streams.
    assert dynamodb_access(synthesized, functions.audit.role) == {
        audit: {"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"},
    }
    assert dynamodb_access(synthesized, functions.sweeper.role) == {
        webhooks: {"dynamodb:BatchGetItem", "dynamodb:UpdateItem"},
        f"{webhooks}/index/byStatus": {"dynamodb:Query"},
    }


def test_no_function_may_delete_scan_or_batch_write(synthesized: Synthesized) -> None:
    for function in synthesized.stack.service.functions.all:
        actions = {
            action
            for statement in synthesized.policy_statements(function.role)
            for action in as_list(statement["Action"])
        }
        assert not actions & {"dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:BatchWriteItem"}
        assert "dynamodb:*" not in actions


def test_secret_bus_and_queue_access_follow_the_data_flow(synthesized: Synthesized) -> None:
    service = synthesized.stack.service
    functions = service.functions

    def who(action: str, resource: str) -> set[str]:
        return {
            f.node.id
            for f in functions.all
            if allows(synthesized.policy_statements(f.role), action, resource)
        }

    assert who("secretsmanager:GetSecretValue", ref(synthesized, service.secret)) == {
        "Receiver",
        "Processor",
    }
    assert who("events:PutEvents", ref(synthesized, service.bus, "Arn")) == {"Audit"}
    assert who("sqs:SendMessage", ref(synthesized, service.queues.processing, "Arn")) == {
        "Receiver",
        "Sweeper",
    }


def test_table_grants_refuse_actions_outside_item_reads_and_writes() -> None:
    with pytest.raises(ValueError, match=r"got actions \['dynamodb:DeleteItem'\], expected"):
        grant_items(None, None, "dynamodb:DeleteItem")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got actions none"):
        grant_items(None, None)  # type: ignore[arg-type]
