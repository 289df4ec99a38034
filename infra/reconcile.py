"""Scheduled reconciliation on AWS: the reconcile function, its schedule, its metric and alarms.

``add_reconcile`` adds to a ``PayhookService`` (called from its constructor, where the
dependencies layer is at hand) a function running ``payhook.runtimes.aws_lambda.reconcile``
every ``every_minutes`` through EventBridge Scheduler, with reserved concurrency 1 (runs never
overlap), a role allowed exactly what its code calls (put and update webhook items, query the
unsigned-event index, send to the processing queue, read the providers secret), and two alarms
on the stack's alert topic: missed events (``MissedEvents``, emitted by the function in the
Embedded Metric Format) and failed runs (function errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constructs.functions import FunctionSpec, PayhookFunction, invoke_every
from infra.constructs.handler_code import runtime_code
from infra.constructs.storage import BY_UNSIGNED_EVENT_ID_INDEX
from infra.grants import grant_index_query, grant_items

if TYPE_CHECKING:
    from infra.service import PayhookService

METRIC_NAMESPACE = "payhook"  # payhook.runtimes.aws_lambda.reconcile.METRIC_NAMESPACE
METRIC_NAME = "MissedEvents"
TIMEOUT_SECONDS = 300  # every provider's pages, with Retry-After waits (capped at 60 s each)
MEMORY_MB = 256


class PayhookReconcile(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service: PayhookService,
        layer: lambda_.ILayerVersion,
        every_minutes: int,
        overlap_minutes: int,
        providers: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        if not 5 <= every_minutes <= 1440:
            raise ValueError(f"every_minutes: got {every_minutes}, expected 5 to 1440")
        if not 1 <= overlap_minutes <= 1440:
            raise ValueError(f"overlap_minutes: got {overlap_minutes}, expected 1 to 1440")
        settings = service.settings
        tables, queues = service.tables, service.queues
        environment = {
            "PAYHOOK_WEBHOOKS_TABLE": tables.webhooks.table_name,
            "PAYHOOK_QUEUE_URL": queues.processing.queue_url,
            "PAYHOOK_PROVIDERS_SECRET_ARN": service.secret.secret_arn,
            "PAYHOOK_ENVIRONMENT": settings.environment_suffix,
            "PAYHOOK_RAW_PAYLOAD_RETENTION_DAYS": str(settings.raw_payload_retention_days),
            "PAYHOOK_SECRET_CACHE_SECONDS": str(settings.secret_cache_seconds),
            "PAYHOOK_RECONCILE_WINDOW_SECONDS": str(60 * (every_minutes + overlap_minutes)),
            "POWERTOOLS_SERVICE_NAME": "payhook",
        }
        if providers:
            environment["PAYHOOK_RECONCILE_PROVIDERS"] = ",".join(providers)
        self.function = PayhookFunction(
            self,
            "Reconcile",
            settings=settings,
            spec=FunctionSpec(
                "reconcile",
                "Stores the events the providers' APIs list but no webhook delivered",
                TIMEOUT_SECONDS,
                MEMORY_MB,
            ),
            code=runtime_code(),
            layer=layer,
            key=service.encryption.key,
            environment=environment,
            reserved_concurrency=1,  # one run at a time, so one run per provider at a time
        )
        function = self.function.function
        grant_items(function, tables.webhooks, "dynamodb:PutItem", "dynamodb:UpdateItem")
        grant_index_query(function, tables.webhooks, BY_UNSIGNED_EVENT_ID_INDEX)
        queues.processing.grant_send_messages(function)
        service.secret.grant_read(function)
        self._allow_log_group(service)

        # A missed run is covered by the next one's overlap: no retry piles up.
        self.schedule_role, self.schedule = invoke_every(
            self,
            function,
            settings,
            component="reconcile",
            minutes=every_minutes,
            description="Store the events the providers' APIs list but no webhook delivered",
            retries=0,
        )

        period = Duration.minutes(every_minutes)
        self.missed_events = cloudwatch.Metric(
            namespace=METRIC_NAMESPACE,
            metric_name=METRIC_NAME,
            dimensions_map={"service": "payhook"},
            statistic="Sum",
            period=period,
        )
        action = cw_actions.SnsAction(service.alarms.topic)
        self.alarms = [
            self._alarm(
                "MissedEventsAlarm",
                settings.name("missed-events"),
                "Events found only through a provider's events API: webhooks never received"
                " (endpoint down, deliveries disabled or dropped, a secret gone wrong)",
                self.missed_events,
                action,
            ),
            self._alarm(
                "ErrorsAlarm",
                settings.name("reconcile-errors"),
                "Reconciliation failed (credentials refused, API down): missed webhooks go unseen",
                function.metric_errors(period=period, statistic="Sum"),
                action,
            ),
        ]

    def acknowledge_findings(self) -> None:
        """The cdk-nag findings this construct shares with the stack's other functions, with
        the same reasons (``infra/nag.py``)."""
        # Imported here: infra.nag imports the service, which calls add_reconcile.
        from infra.nag import (
            AWS,
            INLINE_POLICY,
            KMS_WILDCARD_ACTIONS,
            NO_VPC,
            PCI,
            RUNTIME_PINNED,
            XRAY_WILDCARD,
            _ack,
        )

        function, role = self.function.function, self.function.role
        _ack(function, f"{AWS}L1", RUNTIME_PINNED)
        _ack(function, f"{PCI}LambdaInsideVPC", NO_VPC)
        _ack(role, f"{PCI}IAMNoInlinePolicy", INLINE_POLICY)
        _ack(role, f"{AWS}IAM5[Action::kms:GenerateDataKey*]", KMS_WILDCARD_ACTIONS)
        _ack(role, f"{AWS}IAM5[Action::kms:ReEncrypt*]", KMS_WILDCARD_ACTIONS)
        _ack(role, f"{AWS}IAM5[Resource::*]", XRAY_WILDCARD)
        _ack(self.schedule_role, f"{PCI}IAMNoInlinePolicy", INLINE_POLICY)

    def _alarm(
        self,
        construct_id: str,
        name: str,
        description: str,
        metric: cloudwatch.IMetric,
        action: cw_actions.SnsAction,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=name,
            alarm_description=description,
            metric=metric,
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        return alarm

    def _allow_log_group(self, service: PayhookService) -> None:
        """CloudWatch Logs may encrypt this function's log group with the stack's key (the
        service's own statement lists its log groups only)."""
        service.encryption.allow_log_groups(
            [self.function.log_group_name], sid="AllowCloudWatchLogsForReconcileLogGroup"
        )


def add_reconcile(
    service: PayhookService,
    layer: lambda_.ILayerVersion,
    *,
    every_minutes: int = 15,
    overlap_minutes: int = 15,
    providers: Sequence[str] = (),
) -> PayhookReconcile:
    """Add scheduled reconciliation to ``service`` (call it at the end of its constructor,
    with its dependencies layer). ``providers``: none means every provider whose section in
    the providers secret holds API credentials."""
    reconcile = PayhookReconcile(
        service,
        "Reconcile",
        service=service,
        layer=layer,
        every_minutes=every_minutes,
        overlap_minutes=overlap_minutes,
        providers=providers,
    )
    reconcile.acknowledge_findings()
    return reconcile
