"""The web ACL: per-IP rate limit, body size, AWS managed rules, association, redacted logs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aws_cdk.assertions import Match

from payhook.service.ingest import problem
from tests.infra.cfn import Synthesized, render

pytestmark = pytest.mark.infra


def rules(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    _, acl = synthesized.only("AWS::WAFv2::WebACL")
    return {rule["Name"]: rule for rule in acl["Properties"]["Rules"]}


def test_waf_rate_rule_limits_600_requests_per_60s_per_ip(dev: Synthesized) -> None:
    dev.assertions.has_resource_properties(
        "AWS::WAFv2::WebACL",
        {
            "Rules": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Name": "RateLimitPerIp",
                            "Statement": {
                                "RateBasedStatement": {
                                    "AggregateKeyType": "IP",
                                    "EvaluationWindowSec": 60,
                                    "Limit": 600,
                                }
                            },
                            "Action": {"Block": Match.any_value()},
                        }
                    )
                ]
            )
        },
    )
    rule = rules(dev)["RateLimitPerIp"]
    assert rule["Priority"] == min(r["Priority"] for r in rules(dev).values())


def test_acl_is_regional_and_runs_the_aws_managed_rule_groups(synthesized: Synthesized) -> None:
    _, acl = synthesized.only("AWS::WAFv2::WebACL")
    groups = {
        rule["Statement"]["ManagedRuleGroupStatement"]["Name"]: rule
        for rule in acl["Properties"]["Rules"]
        if "ManagedRuleGroupStatement" in rule["Statement"]
    }

    assert acl["Properties"]["Scope"] == "REGIONAL"
    assert set(groups) == {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    }
    assert all(rule["OverrideAction"] == {"None": {}} for rule in groups.values())
    priorities = [rule["Priority"] for rule in acl["Properties"]["Rules"]]
    assert len(priorities) == len(set(priorities))


def test_large_webhook_bodies_are_counted_not_blocked(synthesized: Synthesized) -> None:
    common = next(
        rule
        for rule in rules(synthesized).values()
        if rule["Statement"].get("ManagedRuleGroupStatement", {}).get("Name")
        == "AWSManagedRulesCommonRuleSet"
    )
    overrides = common["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"]

    assert overrides == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]


def test_acl_protects_the_api_stage(synthesized: Synthesized) -> None:
    acl_id, _ = synthesized.only("AWS::WAFv2::WebACL")
    rest_api_id, _ = synthesized.only("AWS::ApiGateway::RestApi")
    stage_id, _ = synthesized.only("AWS::ApiGateway::Stage")
    _, association = synthesized.only("AWS::WAFv2::WebACLAssociation")
    props = render(association["Properties"])

    assert props["WebACLArn"] == f"${{{acl_id}.Arn}}"
    assert props["ResourceArn"].endswith(f"::/restapis/${{{rest_api_id}}}/stages/${{{stage_id}}}")


def test_waf_logs_redact_credentials_and_query_strings(synthesized: Synthesized) -> None:
    acl_id, _ = synthesized.only("AWS::WAFv2::WebACL")
    _, logging = synthesized.only("AWS::WAFv2::LoggingConfiguration")
    props = render(logging["Properties"])
    [destination] = props["LogDestinationConfigs"]
    log_group_name = f"aws-waf-logs-payhook-{synthesized.suffix}"
    names = [
        lg["Properties"]["LogGroupName"]
        for lg in synthesized.resources("AWS::Logs::LogGroup").values()
    ]

    assert props["ResourceArn"] == f"${{{acl_id}.Arn}}"
    assert destination.endswith(f":log-group:{log_group_name}")  # no ":*" suffix
    assert log_group_name in names
    assert {"SingleHeader": {"Name": "authorization"}} in props["RedactedFields"]
    assert {"QueryString": {}} in props["RedactedFields"]


@pytest.mark.parametrize(
    ("content_length", "blocked"),
    [
        ("1048577", False),  # over the receiver's limit: the receiver answers 413 itself
        ("1999999", False),
        ("2000000", True),
        ("4400000", True),  # would exceed Lambda's 6 MB event once in base64
        ("10485760", True),
        ("0002000000", True),
        ("0", False),
        ("", False),
    ],
)
def test_oversized_bodies_are_answered_413_before_lambda(
    synthesized: Synthesized, content_length: str, blocked: bool
) -> None:
    _, acl = synthesized.only("AWS::WAFv2::WebACL")
    rule = rules(synthesized)["BodyTooLarge"]
    statement = rule["Statement"]["RegexMatchStatement"]
    response = rule["Action"]["Block"]["CustomResponse"]
    body = acl["Properties"]["CustomResponseBodies"][response["CustomResponseBodyKey"]]

    assert statement["FieldToMatch"] == {"SingleHeader": {"Name": "content-length"}}
    assert bool(re.search(statement["RegexString"], content_length)) is blocked
    assert response["ResponseCode"] == 413
    assert body["ContentType"] == "APPLICATION_JSON"
    # The receiver's own 413, so a provider sees one answer whoever refuses the body.
    assert body["Content"].encode() == problem(413, "the body limit is 1048576 bytes").body
    # After the rate limit (cheap), before the managed rules (which read the body).
    priorities = sorted(rules(synthesized).values(), key=lambda r: r["Priority"])
    assert [r["Name"] for r in priorities[:2]] == ["RateLimitPerIp", "BodyTooLarge"]
