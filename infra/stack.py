"""``PayhookStack``: one deployment of ``PayhookService`` and the values operators need."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from infra.config import PayhookSettings
from infra.nag import acknowledge_findings
from infra.service import PayhookService


class PayhookStack(Stack):
    """Termination-protected when the environment suffix is production-like."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: PayhookSettings, **kwargs: Any
    ) -> None:
        kwargs.setdefault("termination_protection", settings.is_production)
        kwargs.setdefault(
            "description", f"payhook webhooks, serverless ({settings.environment_suffix})"
        )
        super().__init__(scope, construct_id, **kwargs)
        Tags.of(self).add("application", "payhook")
        Tags.of(self).add("environment", settings.environment_suffix)

        self.service = PayhookService(self, "Payhook", settings=settings)
        acknowledge_findings(self.service)

        service = self.service
        outputs = {
            "WebhookUrl": (service.api.webhook_url_template, "POST provider webhooks here"),
            "ApiEndpoint": (service.api.api.url, "API stage URL"),
            "WebhooksTableName": (service.tables.webhooks.table_name, "webhooks table"),
            "PaymentsTableName": (service.tables.payments.table_name, "payments table"),
            "AuditTableName": (service.tables.audit.table_name, "audit table"),
            "ProcessingQueueUrl": (service.queues.processing.queue_url, "processing queue"),
            "DeadLetterQueueUrl": (service.queues.dead_letters.queue_url, "processing DLQ"),
            "AuditFailuresQueueUrl": (service.queues.audit_failures.queue_url, "audit DLQ"),
            "AlertTopicArn": (service.alarms.topic.topic_arn, "subscribe to get alerts"),
            "ProvidersSecretName": (service.secret.secret_name, "provider configuration"),
            "EventBusName": (service.bus.event_bus_name, "canonical payment events"),
            "AuditKeyArn": (
                service.audit_key.key.key_arn,
                "KMS HMAC key of the audit chain: verify with kms:VerifyMac",
            ),
        }
        domain = service.api.domain
        if domain is not None:
            outputs["CustomDomainTarget"] = (
                domain.domain_name_alias_domain_name,
                f"point {settings.domain_name} here (CNAME, or a Route 53 alias)",
            )
            outputs["CustomDomainHostedZoneId"] = (
                domain.domain_name_alias_hosted_zone_id,
                "hosted zone of the target, for a Route 53 alias record",
            )
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
