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

# The receiver logs these phrases (never the body): for every request whose signature fails
# (payhook.service.ingest), and for every one refused because the provider secret is
# unusable (payhook.runtimes.aws_lambda.receiver.PROVIDERS_UNUSABLE).
VERIFICATION_FAILED_PHRASE = "verification failed"
VERIFICATION_FAILURES_METRIC = "VerificationFailures"
UNUSABLE_PROVIDERS_PHRASE = "provider secret unusable"
UNUSABLE_PROVIDERS_METRIC = "ProviderSecretFailures"
_GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
_GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


class PayhookAlarms(Construct):
    """One alarm per way a webhook can be refused, delayed, lost or left unaudited."""

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
        web_acl_name: str,
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
        self._action = cw_actions.SnsAction(self.topic)
        self._settings = settings

        self.verification_failures = self._log_count(
            "VerificationFailures",
            functions,
            VERIFICATION_FAILED_PHRASE,
            VERIFICATION_FAILURES_METRIC,
        )
        self.provider_secret_failures = self._log_count(
            "ProviderSecretFailures",
            functions,
            UNUSABLE_PROVIDERS_PHRASE,
            UNUSABLE_PROVIDERS_METRIC,
        )

        minute, five = Duration.minutes(1), Duration.minutes(5)
        audit = functions.audit.function
        self.all: list[cloudwatch.Alarm] = [
            self._alarm(
                "DeadLetters",
                "dead-letters",
                "Webhooks failed processing 5 times and wait in the dead-letter queue: redrive",
                queues.dead_letters.metric_approximate_number_of_messages_visible(
                    period=minute, statistic="Maximum"
                ),
                0,
                _GT,
            ),
            self._alarm(
                "DeadLetterAge",
                "dead-letter-age",
                "A dead letter is getting old: they expire 14 days after their first send",
                queues.dead_letters.metric_approximate_age_of_oldest_message(
                    period=five, statistic="Maximum"
                ),
                settings.dead_letter_age_alarm_seconds,
                _GTE,
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
                "Api4xx",
                "api-4xx",
                "Many 4xx answers: unknown provider paths, oversized bodies, throttling, probes",
                stage.metric_client_error(period=five, statistic="Sum"),
                settings.api_4xx_alarm_threshold,
                _GTE,
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
                "ProviderSecret",
                "provider-secret",
                "The provider secret is unusable: deliveries get 503, or a new value is broken",
                self.provider_secret_failures,
                0,
                _GT,
            ),
            self._alarm(
                "WafBlocked",
                "waf-blocked",
                "The firewall blocked many requests: an attack, or rules refusing genuine webhooks",
                _waf_blocked(stage, web_acl_name, five),
                settings.waf_blocked_alarm_threshold,
                _GTE,
            ),
            self._alarm(
                "AuditErrors",
                "audit-errors",
                "The audit function raised",
                audit.metric_errors(period=five, statistic="Sum"),
                0,
                _GT,
            ),
            self._alarm(
                "AuditIteratorAge",
                "audit-iterator-age",
                "The audit function falls behind its streams: records go to audit-failures at 6 h",
                audit.metric("IteratorAge", period=five, statistic="Maximum"),
                settings.audit_iterator_age_alarm_seconds * 1000,  # the metric is in ms
                _GTE,
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
            self._alarm(
                "AuditFailuresSent",
                "audit-failures-sent",
                "A stream batch was given up and recorded on the audit-failures queue",
                queues.audit_failures.metric_number_of_messages_sent(period=five, statistic="Sum"),
                0,
                _GT,
            ),
            self._alarm(
                "SweeperErrors",
                "sweeper-errors",
                "The sweeper raised: stored webhooks that were never queued are not re-queued",
                functions.sweeper.function.metric_errors(period=five, statistic="Sum"),
                0,
                _GT,
            ),
            self._alarm(
                "AlertDeliveries",
                "alert-deliveries",
                "SNS failed to deliver alerts: check the subscriptions (seen in the console)",
                self.topic.metric_number_of_notifications_failed(period=five, statistic="Sum"),
                0,
                _GT,
            ),
            *(
                self._alarm(
                    f"{function.node.id}Throttles",
                    f"{function.node.id.lower()}-throttles",
                    f"The {function.node.id.lower()} function was throttled: raise concurrency",
                    function.function.metric_throttles(period=five, statistic="Sum"),
                    0,
                    _GT,
                )
                for function in functions.all
            ),
        ]

    def _log_count(
        self, construct_id: str, functions: PayhookFunctions, phrase: str, metric_name: str
    ) -> cloudwatch.IMetric:
        """A metric counting the receiver's log lines that contain ``phrase``."""
        settings = self._settings
        return logs.MetricFilter(
            self,
            construct_id,
            log_group=functions.receiver.log_group,
            filter_name=settings.name(_kebab(construct_id)),
            filter_pattern=logs.FilterPattern.literal(f'"{phrase}"'),
            metric_namespace=f"payhook/{settings.environment_suffix}",
            metric_name=metric_name,
            metric_value="1",
            default_value=0,
        ).metric(statistic="Sum", period=Duration.minutes(5))

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


def _kebab(name: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def _waf_blocked(stage: apigw.Stage, web_acl_name: str, period: Duration) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/WAFV2",
        metric_name="BlockedRequests",
        dimensions_map={"WebACL": web_acl_name, "Rule": "ALL", "Region": stage.stack.region},
        statistic="Sum",
        period=period,
    )
