"""One CloudWatch dashboard: traffic, firewall, functions, queues and alarm states."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.config import PayhookSettings
from infra.constructs.functions import PayhookFunctions
from infra.constructs.queues import PayhookQueues

_FIVE_MINUTES = Duration.minutes(5)


class PayhookDashboard(Construct):
    """Rows read top to bottom in the order a webhook travels."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        stage: apigw.Stage,
        web_acl_name: str,
        functions: PayhookFunctions,
        queues: PayhookQueues,
        verification_failures: cloudwatch.IMetric,
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)

        def waf(metric_name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/WAFV2",
                metric_name=metric_name,
                dimensions_map={
                    "WebACL": web_acl_name,
                    "Rule": "ALL",
                    "Region": stage.stack.region,
                },
                statistic="Sum",
                period=_FIVE_MINUTES,
            )

        per_function = [f.function for f in functions.all]
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=settings.name("dashboard"),
            default_interval=Duration.hours(6),
            widgets=[
                [cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24)],
                [
                    cloudwatch.GraphWidget(
                        title="API requests and errors",
                        left=[
                            stage.metric_count(period=_FIVE_MINUTES),
                            stage.metric_client_error(period=_FIVE_MINUTES),
                            stage.metric_server_error(period=_FIVE_MINUTES),
                        ],
                        width=8,
                    ),
                    cloudwatch.GraphWidget(
                        title="API latency (p99)",
                        left=[stage.metric_latency(period=_FIVE_MINUTES, statistic="p99")],
                        width=8,
                    ),
                    cloudwatch.GraphWidget(
                        title="WAF allowed / blocked, verification failures",
                        left=[
                            waf("AllowedRequests"),
                            waf("BlockedRequests"),
                            verification_failures,
                        ],
                        width=8,
                    ),
                ],
                [
                    cloudwatch.GraphWidget(
                        title="Invocations",
                        left=[f.metric_invocations(period=_FIVE_MINUTES) for f in per_function],
                        width=6,
                    ),
                    cloudwatch.GraphWidget(
                        title="Errors and throttles",
                        left=[f.metric_errors(period=_FIVE_MINUTES) for f in per_function]
                        + [f.metric_throttles(period=_FIVE_MINUTES) for f in per_function],
                        width=6,
                    ),
                    cloudwatch.GraphWidget(
                        title="Duration (p99)",
                        left=[
                            f.metric_duration(period=_FIVE_MINUTES, statistic="p99")
                            for f in per_function
                        ],
                        width=6,
                    ),
                    cloudwatch.GraphWidget(
                        title="Queues: waiting, oldest (s), dead letters",
                        left=[
                            queues.processing.metric_approximate_number_of_messages_visible(),
                            queues.dead_letters.metric_approximate_number_of_messages_visible(),
                            queues.audit_failures.metric_approximate_number_of_messages_visible(),
                        ],
                        right=[queues.processing.metric_approximate_age_of_oldest_message()],
                        width=6,
                    ),
                ],
                [
                    cloudwatch.GraphWidget(
                        title="Audit lag behind the streams (IteratorAge, ms)",
                        left=[
                            functions.audit.function.metric(
                                "IteratorAge", period=_FIVE_MINUTES, statistic="Maximum"
                            )
                        ],
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title="Dead letters: oldest (s), audit batches given up",
                        left=[queues.dead_letters.metric_approximate_age_of_oldest_message()],
                        right=[queues.audit_failures.metric_number_of_messages_sent()],
                        width=12,
                    ),
                ],
            ],
        )
