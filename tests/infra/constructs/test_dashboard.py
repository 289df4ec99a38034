"""The dashboard shows every alarm and every stage of the pipeline."""

from __future__ import annotations

import json

import pytest

from tests.infra.cfn import Synthesized, render

pytestmark = pytest.mark.infra


def test_dashboard_covers_alarms_api_waf_functions_and_queues(synthesized: Synthesized) -> None:
    _, dashboard = synthesized.only("AWS::CloudWatch::Dashboard")
    body = render(dashboard["Properties"]["DashboardBody"])
    widgets = json.loads(body.replace("${", "{"))["widgets"]
    alarm_widget = next(w for w in widgets if w["properties"].get("title") == "Alarms")
    text = body

    assert dashboard["Properties"]["DashboardName"] == f"payhook-dashboard-{synthesized.suffix}"
    assert len(alarm_widget["properties"]["alarms"]) == len(
        synthesized.resources("AWS::CloudWatch::Alarm")
    )
    for namespace in ("AWS/ApiGateway", "AWS/WAFV2", "AWS/Lambda", "AWS/SQS"):
        assert namespace in text
    for function in synthesized.stack.service.functions.all:
        assert synthesized.logical_id(function.function) in text
    titles = {w["properties"].get("title", "") for w in widgets}
    assert any("IteratorAge" in title for title in titles)  # the audit function's lag
