"""The REST API: ``POST /webhook/{provider}`` proxied to the receiver function.

``GET`` on the same path is proxied too: it answers a provider's verification challenge (such
as Braintree's ``bt_challenge``), and 405 for the others. Every content type is a binary media
type, so API Gateway hands the body to the receiver base64-encoded (``isBase64Encoded: true``)
and byte for byte: signatures are computed over the exact bytes the provider sent. The stage
is throttled, traced, and logs access (no headers, no query string, no body) and execution
errors to encrypted log groups.

With ``domain_name`` and ``certificate_arn`` the stage is also served at
``https://<domain>/webhook/{provider}``: the URL registered at every provider then survives a
replaced API. The account-level CloudWatch role API Gateway logs through is created only when
``api_gateway_cloudwatch_role`` is set (once per account and region, where none exists).
"""

from __future__ import annotations

import json

from aws_cdk import Fn
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import PayhookSettings
from infra.constructs.log_groups import encrypted_log_group

STAGE_NAME = "v1"
PROVIDER_PARAMETER = "method.request.path.provider"
# One JSON object per request. Deliberately absent: headers (some providers send credentials),
# the query string, and the body.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatencyMs": "$context.integration.latency",
    "errorMessage": "$context.error.message",
    "wafStatus": "$context.waf.status",
    "traceId": "$context.xrayTraceId",
}


class WebhookApi(Construct):
    """A regional REST API with one validated, throttled webhook route."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        key: kms.IKey,
        receiver: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs_name = settings.log_group_name("api/access")
        self.access_logs = encrypted_log_group(
            self,
            "AccessLogs",
            name=access_logs_name,
            settings=settings,
            key=key,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=settings.name("api"),
            description=f"payhook {settings.environment_suffix}: provider webhooks",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            binary_media_types=["*/*"],
            cloud_watch_role=settings.api_gateway_cloudwatch_role,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=settings.api_throttle_rate_per_second,
                throttling_burst_limit=settings.api_throttle_burst,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # full request/response logging would log bodies
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
        )
        # API Gateway names the execution log group itself; created here first so that it is
        # encrypted and expires like every other log group.
        execution_logs_name = Fn.join(
            "", ["API-Gateway-Execution-Logs_", self.api.rest_api_id, f"/{STAGE_NAME}"]
        )
        self.execution_logs = encrypted_log_group(
            self,
            "ExecutionLogs",
            name=execution_logs_name,
            settings=settings,
            key=key,
        )
        self.api.deployment_stage.node.add_dependency(self.execution_logs)
        # Literal names (not Refs to the log groups) for the key policy, which they depend on.
        self.log_group_names = [access_logs_name, execution_logs_name]

        validator = self.api.add_request_validator(
            "ParameterValidator",
            request_validator_name=settings.name("parameters"),
            validate_request_parameters=True,
            # No body model: each provider has its own format (JSON, form, XML), and the
            # receiver authenticates the exact bytes before parsing them.
            validate_request_body=False,
        )
        self.webhook = self.api.root.add_resource("webhook").add_resource("{provider}")
        integration = apigw.LambdaIntegration(receiver, proxy=True)
        self.methods = [
            self.webhook.add_method(
                http_method,
                integration,
                request_parameters={PROVIDER_PARAMETER: True},
                request_validator=validator,
            )
            for http_method in ("POST", "GET")
        ]
        self.domain: apigw.DomainName | None = None
        self._domain_name = settings.domain_name  # literal, for the URL output
        if settings.domain_name and settings.certificate_arn:
            self.domain = apigw.DomainName(
                self,
                "Domain",
                domain_name=settings.domain_name,
                certificate=acm.Certificate.from_certificate_arn(
                    self, "Certificate", settings.certificate_arn
                ),
                endpoint_type=apigw.EndpointType.REGIONAL,
                security_policy=apigw.SecurityPolicy.TLS_1_2,
            )
            # No base path: https://<domain>/webhook/{provider}, whatever the stage's name.
            self.domain.add_base_path_mapping(self.api, stage=self.api.deployment_stage)

    @property
    def stage(self) -> apigw.Stage:
        return self.api.deployment_stage

    @property
    def webhook_url_template(self) -> str:
        if self.domain is not None:
            return f"https://{self._domain_name}/webhook/{{provider}}"
        return f"{self.api.url}webhook/{{provider}}"
