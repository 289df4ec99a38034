"""infra/reconcile.py: facts of the synthesized template (schedule, least-privilege role,
reserved concurrency, the missed-events metric and its alarm), cdk-nag included."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from aws_cdk import App

    from infra import build
    from infra.application import project_context
    from infra.reconcile import add_reconcile

    outdir: Path = tmp_path_factory.mktemp("cdk-reconcile")
    app = App(
        outdir=str(outdir),
        context={**project_context(), "aws:cdk:bundling-stacks": [], "environmentSuffix": "rc1"},
    )
    stack = build(app)
    layer = stack.service.node.find_child("Dependencies").layer  # type: ignore[attr-defined]
    add_reconcile(stack.service, layer, every_minutes=15, overlap_minutes=10, providers=["stripe"])
    app.synth()  # raises on cdk-nag errors and validation failures
    synthesized: dict[str, Any] = json.loads((outdir / stack.template_file).read_text())
    return synthesized


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def reconcile_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(key, function)] = [
        (k, v)
        for k, v in resources(template, "AWS::Lambda::Function").items()
        if v["Properties"].get("FunctionName") == "payhook-reconcile-rc1"
    ]
    return key, function["Properties"]


def test_the_function_runs_the_reconcile_handler_one_at_a_time(template: dict[str, Any]) -> None:
    _, function = reconcile_function(template)
    assert function["Handler"] == "payhook.runtimes.aws_lambda.reconcile.handler"
    assert function["ReservedConcurrentExecutions"] == 1
    variables = function["Environment"]["Variables"]
    assert variables["PAYHOOK_RECONCILE_WINDOW_SECONDS"] == "1500"
    assert variables["PAYHOOK_RECONCILE_PROVIDERS"] == "stripe"


def test_the_schedule_invokes_it_every_interval(template: dict[str, Any]) -> None:
    [schedule] = [
        s["Properties"]
        for s in resources(template, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Name"] == "payhook-reconcile-rc1"
    ]
    assert schedule["ScheduleExpression"] == "rate(15 minutes)"
    key, _ = reconcile_function(template)
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": [key, "Arn"]}


def test_its_role_may_do_what_its_code_calls_and_nothing_more(template: dict[str, Any]) -> None:
    _key, function = reconcile_function(template)
    role = function["Role"]["Fn::GetAtt"][0]
    actions: set[str] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                listed = statement["Action"]
                actions |= {listed} if isinstance(listed, str) else set(listed)
    table_actions = {a for a in actions if a.startswith("dynamodb:")}
    assert table_actions == {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"}
    assert "sqs:SendMessage" in actions
    assert "secretsmanager:GetSecretValue" in actions
    assert not {a for a in actions if a.endswith("*") and not a.startswith(("kms:", "xray:"))}
    assert not {a for a in actions if a.startswith(("dynamodb:Delete", "sqs:Delete", "s3:"))}


def test_missed_events_raise_an_alarm(template: dict[str, Any]) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
    }
    missed = alarms["payhook-missed-events-rc1"]
    assert (missed["Namespace"], missed["MetricName"]) == ("payhook", "MissedEvents")
    assert missed["Dimensions"] == [{"Name": "service", "Value": "payhook"}]
    assert missed["Threshold"] == 1
    assert missed["Period"] == 900
    assert missed["AlarmActions"]
    assert "payhook-reconcile-errors-rc1" in alarms


def test_the_stack_key_lets_cloudwatch_logs_encrypt_only_its_log_group(
    template: dict[str, Any],
) -> None:
    [statement] = [
        st
        for key in resources(template, "AWS::KMS::Key").values()
        for st in key["Properties"]["KeyPolicy"]["Statement"]
        if st.get("Sid") == "AllowCloudWatchLogsForReconcileLogGroup"
    ]
    [arn] = statement["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    assert json.dumps(arn).endswith(':log-group:/payhook/rc1/lambda/reconcile"]]}')
    assert "kms:GenerateDataKey*" in statement["Action"]
