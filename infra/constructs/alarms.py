"""The alert topic and the alarms that make failures loud.

Every alarm publishes to one KMS-encrypted, TLS-only SNS topic. CloudWatch publishes as the
``cloudwatch.amazonaws.com`` service principal, so both the topic policy (replaced as a whole
once ``enforce_ssl`` adds a statement) and the key policy allow it, for this account's payhook
alarms only.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.config import PayhookSettings
from infra.constructs.encryption import PayhookKey
from infra.constructs.functions import PayhookFunctions
from infra.constructs.queues import PayhookQueues

# The receiver logs this phrase (never the body) for every request whose signature fails.
VERIFICATION_FAILED_PHRASE = "verification failed"
VERIFICATION_FAILURES_METRIC = "VerificationFailures"
_GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
_GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


class PayhookAlarms(Construct):
    """Dead letters, queue age, processor errors, 5xx, verification spikes, audit failures."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        key: PayhookKey,
        functions: PayhookFunctions,
        queues: PayhookQueues,
        stage: apigw.Stage,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        alarm_pattern = f"payhook-*-{settings.environment_suffix}"
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=settings.name("alerts"),
            display_name=f"payhook {settings.environment_suffix} alerts",
            master_key=key.key,
            enforce_ssl=True,
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowPayhookAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:"
                        f"{stack.account}:alarm:{alarm_pattern}"
                    },
                },
            )
        )
        key.allow_cloudwatch_alarms(alarm_pattern)
        if settings.alert_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alert_email))

        self.verification_failures = logs.MetricFilter(
            self,
            "VerificationFailures",
            log_group=functions.receiver.log_group,
            filter_name=settings.name("verification-failures"),
            filter_pattern=logs.FilterPattern.literal(f'"{VERIFICATION_FAILED_PHRASE}"'),
            metric_namespace=f"payhook/{settings.environment_suffix}",
            metric_name=VERIFICATION_FAILURES_METRIC,
            metric_value="1",
            default_value=0,
        ).metric(statistic="Sum", period=Duration.minutes(5))

        self._action = cw_actions.SnsAction(self.topic)
        self._settings = settings
        minute, five = Duration.minutes(1), Duration.minutes(5)
        self.all: list[cloudwatch.Alarm] = [
            self._alarm(
                "DeadLetters",
                "dead-letters",
                "Webhooks failed processing 5 times and wait in the dead-letter queue",
                queues.dead_letters.metric_approximate_number_of_messages_visible(
                    period=minute, statistic="Maximum"
                ),
                0,
                _GT,
            ),
            self._alarm(
                "QueueAge",
                "queue-age",
                "The oldest webhook waiting for processing is older than expected",
                queues.processing.metric_approximate_age_of_oldest_message(
                    period=minute, statistic="Maximum"
                ),
                settings.queue_age_alarm_seconds,
                _GTE,
            ),
            self._alarm(
                "ProcessorErrors",
                "processor-errors",
                "The processor function raised",
                functions.processor.function.metric_errors(period=five, statistic="Sum"),
                0,
                _GT,
            ),
            self._alarm(
                "Receiver5xx",
                "receiver-5xx",
                "The webhook API answered 5xx: providers will retry, but something is broken",
                stage.metric_server_error(period=five, statistic="Sum"),
                0,
                _GT,
            ),
            self._alarm(
                "VerificationSpike",
                "verification-failures",
                "Many webhooks failed signature verification: rotated secret or an attack",
                self.verification_failures,
                settings.verification_failures_alarm_threshold,
                _GTE,
            ),
            self._alarm(
                "AuditErrors",
                "audit-errors",
                "The audit function raised",
                functions.audit.function.metric_errors(period=five, statistic="Sum"),
                0,
                _GT,
            ),
            self._alarm(
                "AuditFailures",
                "audit-failures",
                "Stream batches exhausted their retries: redrive within 24 h (stream retention)",
                queues.audit_failures.metric_approximate_number_of_messages_visible(
                    period=minute, statistic="Maximum"
                ),
                0,
                _GT,
            ),
        ]

    def _alarm(
        self,
        construct_id: str,
        name: str,
        description: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=self._settings.name(name),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        return alarm
