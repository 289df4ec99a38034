"""The audit chain's KMS HMAC key: its spec, who may use it (the audit function may only make
MACs), and where its id reaches."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cfn import Synthesized, as_list, render

pytestmark = pytest.mark.infra


def audit_key(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    logical_id = synthesized.logical_id(synthesized.stack.service.audit_key.key)
    resource: dict[str, Any] = synthesized.template["Resources"][logical_id]
    return logical_id, resource


def statements_on(synthesized: Synthesized, role: Any, key_id: str) -> list[dict[str, Any]]:
    return [
        s
        for s in synthesized.policy_statements(role)
        if f"${{{key_id}.Arn}}" in as_list(s["Resource"])
    ]


def test_the_audit_key_is_an_hmac_key_of_its_own_with_a_suffixed_alias(
    synthesized: Synthesized,
) -> None:
    key_id, key = audit_key(synthesized)
    data_key_id, _ = synthesized.data_key()
    props = key["Properties"]

    assert key_id != data_key_id
    assert props["KeySpec"] == "HMAC_256"
    assert props["KeyUsage"] == "GENERATE_VERIFY_MAC"
    assert not props.get("EnableKeyRotation")  # KMS does not rotate HMAC keys
    [alias] = [
        a
        for a in synthesized.resources("AWS::KMS::Alias").values()
        if render(a["Properties"]["TargetKeyId"]) == f"${{{key_id}.Arn}}"
    ]
    assert alias["Properties"]["AliasName"] == f"alias/payhook-audit-key-{synthesized.suffix}"


def test_production_retains_the_audit_key_with_a_long_pending_window(
    dev: Synthesized, production: Synthesized
) -> None:
    _, key = audit_key(production)
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert key["Properties"]["PendingWindowInDays"] == 30
    assert audit_key(dev)[1]["Properties"]["PendingWindowInDays"] == 7


def test_the_audit_function_may_only_generate_macs_and_no_other_function_may_use_the_key(
    synthesized: Synthesized,
) -> None:
    key_id, _ = audit_key(synthesized)
    functions = synthesized.stack.service.functions

    [statement] = statements_on(synthesized, functions.audit.role, key_id)
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["kms:GenerateMac"]
    assert as_list(statement["Resource"]) == [f"${{{key_id}.Arn}}"]
    for function in (functions.receiver, functions.processor):
        assert statements_on(synthesized, function.role, key_id) == []
    # No role of the stack may verify, describe or administer it (that is for operators).
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        for s in render(policy["Properties"]["PolicyDocument"]["Statement"]):
            if f"${{{key_id}.Arn}}" in as_list(s["Resource"]):
                assert as_list(s["Action"]) == ["kms:GenerateMac"]


def test_the_key_id_reaches_the_audit_function_and_the_outputs(synthesized: Synthesized) -> None:
    key_id, _ = audit_key(synthesized)
    functions = synthesized.stack.service.functions
    audit = render(synthesized.properties(functions.audit.function)["Environment"]["Variables"])
    assert audit["PAYHOOK_AUDIT_KEY_ID"] == f"${{{key_id}.Arn}}"
    for function in (functions.receiver, functions.processor):
        variables = synthesized.properties(function.function)["Environment"]["Variables"]
        assert "PAYHOOK_AUDIT_KEY_ID" not in variables
    outputs = {name: render(o["Value"]) for name, o in synthesized.template["Outputs"].items()}
    assert outputs["AuditKeyArn"] == f"${{{key_id}.Arn}}"
