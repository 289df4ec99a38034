"""cdk-nag: the AwsSolutions and PCI DSS 3.2.1 packs, and each acknowledged finding with its reason.

All acknowledgments live here, each on the narrowest construct it concerns, so that a reviewer
reads the complete list of accepted deviations in one file. Anything not acknowledged here
fails ``cdk synth``.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks, PCIDSS321Checks
from constructs import IConstruct

from infra.service import PayhookService

AWS = "AwsSolutions::AwsSolutions-"
PCI = "PCI.DSS.321::PCI.DSS.321-"

NO_AUTHORIZER = (
    "Payment providers cannot present IAM credentials or Cognito tokens. Each request is "
    "authenticated by the provider's signature (HMAC or RSA) over the exact body, checked by "
    "the receiver before anything is stored; unauthenticated requests get 4xx. WAF rate-limits "
    "and filters the endpoint in front of it."
)
NO_BODY_MODEL = (
    "The validator requires the provider path parameter. Bodies have no model on purpose: "
    "each provider sends its own format (JSON, form-encoded, XML), and the receiver verifies "
    "the raw bytes before parsing, which a schema check in API Gateway cannot replace."
)
APIGW_LOGS_ROLE = (
    "AmazonAPIGatewayPushToCloudWatchLogs is the role API Gateway requires (one per account "
    "and region) to write the stage's access and execution logs; AWS maintains its scope."
)
NO_CACHE = (
    "Webhook deliveries are POST requests that must each reach the receiver; a cache would "
    "answer a retry without storing it. No response is cached, so nothing needs encrypting."
)
NO_CLIENT_CERTIFICATE = (
    "Stage client certificates authenticate API Gateway to HTTP backends. The only "
    "integration is a Lambda proxy, invoked through IAM, so there is no backend to present a "
    "certificate to. Clients reach the stage over TLS only (execute-api endpoints)."
)
RUNTIME_PINNED = (
    "python3.13 is pinned: the dependency layer is built with wheels for CPython 3.13 and the "
    "handlers are tested on it. Moving to a newer runtime is a deliberate change of RUNTIME "
    "in infra/constructs/layer.py that rebuilds the layer, not an automatic upgrade."
)
NO_VPC = (
    "The functions reach only AWS public endpoints (DynamoDB, SQS, Secrets Manager, "
    "EventBridge, X-Ray) over TLS with IAM authorization, and some providers need internet "
    "egress (PayPal certificate download, Mollie payment lookups). A VPC would add NAT "
    "gateways and interface endpoints without holding any cardholder data."
)
INLINE_POLICY = (
    "CDK grants attach least-privilege statements, scoped to this stack's resources, as an "
    "AWS::IAM::Policy bound to this one role. A customer-managed policy would hold the same "
    "statements and add an attachable artifact that no other principal should use."
)
XRAY_WILDCARD = (
    "Tracing.ACTIVE needs xray:PutTraceSegments and xray:PutTelemetryRecords, which have no "
    "resource-level permissions: X-Ray accepts them only with Resource '*'. They allow writing "
    "trace data and nothing else."
)
XRAY_AND_LIST_STREAMS_WILDCARD = (
    "Tracing.ACTIVE needs xray:PutTraceSegments and xray:PutTelemetryRecords, and the stream "
    "event sources need dynamodb:ListStreams; none of them has resource-level permissions, "
    "so they take Resource '*'. Reading a stream's records stays limited to the two streams."
)
KMS_WILDCARD_ACTIONS = (
    "kms:GenerateDataKey* and kms:ReEncrypt* come from the CDK grants for the encrypted "
    "table, queue and secret; they are limited to the one payhook key by its ARN."
)
AUDIT_FAILURES_IS_A_DLQ = (
    "This queue is itself a dead-letter destination: the on-failure destination of the audit "
    "function's stream event sources, holding batches that exhausted their retries. It is "
    "alarmed and kept 14 days; a dead-letter queue of its own would only move the problem."
)
ROTATION_AT_PROVIDERS = (
    "The secret holds signing secrets issued by each payment provider's dashboard; no "
    "rotation Lambda can obtain new ones. Rotation happens at the provider and is loaded with "
    "put-secret-value; verifiers accept several secrets per provider during the switch."
)


def register_checks(app: App) -> None:
    """Run both packs at synth; any unacknowledged finding fails the synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), PCIDSS321Checks(app))


def _ack(scope: IConstruct, finding: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=finding, reason=reason))


def acknowledge_findings(service: PayhookService) -> None:
    """Acknowledge the findings this design accepts, each with the reason it is accepted."""
    api = service.api
    _ack(api.api, f"{AWS}APIG2", NO_BODY_MODEL)
    for method in api.methods:
        _ack(method, f"{AWS}APIG4", NO_AUTHORIZER)
        _ack(method, f"{AWS}COG4", NO_AUTHORIZER)
    if service.settings.api_gateway_cloudwatch_role:
        _ack(
            api.api,
            f"{AWS}IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            APIGW_LOGS_ROLE,
        )
    _ack(api.stage, f"{PCI}APIGWCacheEnabledAndEncrypted", NO_CACHE)
    _ack(api.stage, f"{PCI}APIGWSSLEnabled", NO_CLIENT_CERTIFICATE)

    for function in service.functions.all:
        _ack(function.function, f"{AWS}L1", RUNTIME_PINNED)
        _ack(function.function, f"{PCI}LambdaInsideVPC", NO_VPC)
        _ack(function.role, f"{PCI}IAMNoInlinePolicy", INLINE_POLICY)
        _ack(function.role, f"{AWS}IAM5[Action::kms:GenerateDataKey*]", KMS_WILDCARD_ACTIONS)
        _ack(function.role, f"{AWS}IAM5[Action::kms:ReEncrypt*]", KMS_WILDCARD_ACTIONS)
        streams = function is service.functions.audit
        wildcard = XRAY_AND_LIST_STREAMS_WILDCARD if streams else XRAY_WILDCARD
        _ack(function.role, f"{AWS}IAM5[Resource::*]", wildcard)
    _ack(service.functions.schedule_role, f"{PCI}IAMNoInlinePolicy", INLINE_POLICY)

    _ack(service.queues.audit_failures, f"{AWS}SQS3", AUDIT_FAILURES_IS_A_DLQ)
    _ack(service.secret, f"{AWS}SMG4", ROTATION_AT_PROVIDERS)
