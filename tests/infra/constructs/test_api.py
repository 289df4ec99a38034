"""The REST API: one validated proxy route, a throttled, traced and logged stage."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from tests.infra.cfn import Synthesized, render

pytestmark = pytest.mark.infra


def test_api_stage_is_throttled(dev: Synthesized, production: Synthesized) -> None:
    # Defaults in dev; the production synth sets 50 req/s, burst 80.
    for synthesized, rate, burst in ((dev, 100, 200), (production, 50, 80)):
        synthesized.assertions.has_resource_properties(
            "AWS::ApiGateway::Stage",
            {
                "MethodSettings": [
                    Match.object_like(
                        {
                            "HttpMethod": "*",
                            "ResourcePath": "/*",
                            "ThrottlingRateLimit": rate,
                            "ThrottlingBurstLimit": burst,
                        }
                    )
                ]
            },
        )


def test_webhook_route_is_a_validated_lambda_proxy_post(synthesized: Synthesized) -> None:
    service = synthesized.stack.service
    _, method = synthesized.only("AWS::ApiGateway::Method")
    props = render(method["Properties"])
    validator_id, validator = synthesized.only("AWS::ApiGateway::RequestValidator")
    paths = {
        render(r["Properties"]["PathPart"])
        for r in synthesized.resources("AWS::ApiGateway::Resource").values()
    }
    receiver = synthesized.logical_id(service.functions.receiver.function)

    assert paths == {"webhook", "{provider}"}
    assert props["HttpMethod"] == "POST"
    assert props["Integration"]["Type"] == "AWS_PROXY"
    assert f"/functions/${{{receiver}.Arn}}/invocations" in props["Integration"]["Uri"]
    assert props["RequestParameters"] == {"method.request.path.provider": True}
    assert props["RequestValidatorId"] == f"${{{validator_id}}}"
    assert validator["Properties"]["ValidateRequestParameters"] is True


def test_bodies_reach_the_receiver_byte_for_byte(synthesized: Synthesized) -> None:
    # Every content type is binary: API Gateway base64-encodes the body instead of
    # re-encoding it as text, so signatures over the raw bytes still verify.
    _, api = synthesized.only("AWS::ApiGateway::RestApi")

    assert api["Properties"]["BinaryMediaTypes"] == ["*/*"]
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}


def test_stage_traces_and_logs_access_without_headers_query_or_body(
    synthesized: Synthesized,
) -> None:
    _, stage = synthesized.only("AWS::ApiGateway::Stage")
    props = stage["Properties"]
    access_logs = synthesized.logical_id(synthesized.stack.service.api.access_logs)
    log_format = json.loads(props["AccessLogSetting"]["Format"])
    variables = " ".join(log_format.values())

    assert props["TracingEnabled"] is True
    destination = render(props["AccessLogSetting"]["DestinationArn"])
    assert destination.endswith(f":log-group:${{{access_logs}}}")
    assert "$context.requestId" in variables
    assert "$context.status" in variables
    for leaked in ("header", "querystring", "body", "$input"):
        assert leaked not in variables.lower()
    [settings] = props["MethodSettings"]
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["DataTraceEnabled"] is False  # would log full requests


def test_execution_logs_exist_encrypted_before_the_stage_writes_them(
    synthesized: Synthesized,
) -> None:
    rest_api_id, _ = synthesized.only("AWS::ApiGateway::RestApi")
    _, stage = synthesized.only("AWS::ApiGateway::Stage")
    execution_logs = synthesized.logical_id(synthesized.stack.service.api.execution_logs)
    log_group = synthesized.template["Resources"][execution_logs]["Properties"]

    assert render(log_group["LogGroupName"]) == f"API-Gateway-Execution-Logs_${{{rest_api_id}}}/v1"
    assert "KmsKeyId" in log_group
    assert "RetentionInDays" in log_group
    assert execution_logs in stage["DependsOn"]
