"""The sweeper's schedule: EventBridge Scheduler invokes it every 5 minutes, and nothing else."""

from __future__ import annotations

import pytest

from tests.infra.cfn import Synthesized, as_list, render

pytestmark = pytest.mark.infra


def test_sweeper_runs_every_five_minutes_through_a_role_that_may_only_invoke_it(
    synthesized: Synthesized,
) -> None:
    functions = synthesized.stack.service.functions
    sweeper_arn = f"${{{synthesized.logical_id(functions.sweeper.function)}.Arn}}"
    _, schedule = synthesized.only("AWS::Scheduler::Schedule")
    props = render(schedule["Properties"])
    role_id = synthesized.logical_id(functions.schedule_role)
    role = synthesized.template["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]

    assert props["Name"] == f"payhook-sweep-{synthesized.suffix}"
    assert props["ScheduleExpression"] == "rate(5 minutes)"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = props["Target"]
    assert target["Arn"] == sweeper_arn
    assert target["RoleArn"] == f"${{{role_id}.Arn}}"
    # A missed run is only late: the next comes within minutes.
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 300}
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    [statement] = synthesized.policy_statements(functions.schedule_role)
    assert as_list(statement["Action"]) == ["lambda:InvokeFunction"]
    assert as_list(statement["Resource"]) == [sweeper_arn]  # not its versions or aliases


def test_sweeper_waits_the_configured_bound(synthesized: Synthesized) -> None:
    sweeper = synthesized.stack.service.functions.sweeper
    props = synthesized.properties(sweeper.function)

    assert props["Handler"] == "payhook.runtimes.aws_lambda.sweeper.handler"
    assert props["Environment"]["Variables"]["PAYHOOK_SWEEP_AFTER_SECONDS"] == "600"
    assert props["Timeout"] == 60
