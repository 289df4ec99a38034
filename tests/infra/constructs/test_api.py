"""The REST API: one validated proxy route, a throttled, traced and logged stage."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from tests.infra.cfn import Synthesized, render
from tests.infra.conftest import PRODUCTION_CERTIFICATE, PRODUCTION_DOMAIN

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


def test_webhook_route_is_a_validated_lambda_proxy_for_post_and_get(
    synthesized: Synthesized,
) -> None:
    # GET answers a provider's verification challenge (Braintree's bt_challenge) or 405.
    service = synthesized.stack.service
    methods = {
        m["Properties"]["HttpMethod"]: render(m["Properties"])
        for m in synthesized.resources("AWS::ApiGateway::Method").values()
    }
    validator_id, validator = synthesized.only("AWS::ApiGateway::RequestValidator")
    paths = {
        render(r["Properties"]["PathPart"])
        for r in synthesized.resources("AWS::ApiGateway::Resource").values()
    }
    receiver = synthesized.logical_id(service.functions.receiver.function)

    assert paths == {"webhook", "{provider}"}
    assert set(methods) == {"POST", "GET"}
    for props in methods.values():
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert f"/functions/${{{receiver}.Arn}}/invocations" in props["Integration"]["Uri"]
        assert props["RequestParameters"] == {"method.request.path.provider": True}
        assert props["RequestValidatorId"] == f"${{{validator_id}}}"
    assert validator["Properties"]["ValidateRequestParameters"] is True


def test_custom_domain_serves_the_stage_at_a_stable_url(
    dev: Synthesized, production: Synthesized
) -> None:
    assert dev.resources("AWS::ApiGateway::DomainName") == {}
    assert dev.resources("AWS::ApiGateway::BasePathMapping") == {}
    domain_id, domain = production.only("AWS::ApiGateway::DomainName")
    _, mapping = production.only("AWS::ApiGateway::BasePathMapping")
    rest_api_id, _ = production.only("AWS::ApiGateway::RestApi")
    stage_id, _ = production.only("AWS::ApiGateway::Stage")
    props, mapped = render(domain["Properties"]), render(mapping["Properties"])

    assert props["DomainName"] == PRODUCTION_DOMAIN
    assert props["RegionalCertificateArn"] == PRODUCTION_CERTIFICATE
    assert props["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert props["SecurityPolicy"] == "TLS_1_2"
    assert mapped["DomainName"] == f"${{{domain_id}}}"
    assert mapped["RestApiId"] == f"${{{rest_api_id}}}"
    assert mapped["Stage"] == f"${{{stage_id}}}"
    assert "BasePath" not in mapped  # https://<domain>/webhook/{provider}


def test_the_account_logging_role_is_set_only_where_asked(
    dev: Synthesized, production: Synthesized
) -> None:
    # One role per account and region: a stack that sets it replaces the role of every
    # other API there, so only an opted-in stack (the production synth) sets it.
    assert dev.resources("AWS::ApiGateway::Account") == {}
    assert not any(
        "AmazonAPIGatewayPushToCloudWatchLogs" in str(role["Properties"])
        for role in dev.resources("AWS::IAM::Role").values()
    )
    _, account = production.only("AWS::ApiGateway::Account")
    role_id = render(account["Properties"]["CloudWatchRoleArn"]).strip("${}").split(".")[0]
    role = production.template["Resources"][role_id]["Properties"]
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in str(role["ManagedPolicyArns"])


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
