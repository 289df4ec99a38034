"""The four Lambda functions, their roles and log groups, and what invokes three of them.

- receiver: behind API Gateway; verifies, stores, sends ``{"webhookId": ...}`` to the queue.
- processor: on the processing queue, reports each failed message (ReportBatchItemFailures);
  a message failing 5 times moves to the dead-letter queue.
- audit: on the webhooks and payments streams; failed batches are split (bisect) and retried a
  bounded number of times, then recorded on the audit-failures queue, which alarms.
- sweeper: every few minutes (EventBridge Scheduler), re-queues webhooks stored but never
  queued (``payhook.backends.aws.sweep``).

Both event sources gather records for a batching window (settings) before invoking: fewer,
fuller invocations, each paying its fixed costs once (docs/deploy.md: cost).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from infra.config import PayhookSettings
from infra.constructs.handler_code import runtime_code
from infra.constructs.layer import ARCHITECTURE, RUNTIME
from infra.constructs.log_groups import encrypted_log_group
from infra.constructs.queues import PayhookQueues
from infra.constructs.storage import PayhookTables

HANDLER_MODULE = "payhook.runtimes.aws_lambda"
PROCESSOR_BATCH_SIZE = 10
STREAM_BATCH_SIZE = 100
STREAM_RETRY_ATTEMPTS = 3
# Streams keep records 24 h; a record older than this goes to the audit-failures queue instead
# of blocking its shard, leaving hours to redrive it while the stream still has it.
STREAM_MAX_RECORD_AGE = Duration.hours(6)
# A sweep re-queues at most PAYHOOK_SWEEP_LIMIT (1,000) webhooks and reads at most ten times as
# many candidates, in pages of 100: seconds, not minutes.
SWEEPER_TIMEOUT_SECONDS = 60
SWEEPER_MEMORY_MB = 256
# A missed sweep is only late: the next one comes within minutes, so retry briefly.
SWEEP_RETRY_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    component: str
    description: str
    timeout_seconds: int
    memory_mb: int

    @property
    def handler(self) -> str:
        return f"{HANDLER_MODULE}.{self.component}.handler"


class PayhookFunction(Construct):
    """One function with its own role (no managed policies) and its own encrypted log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        spec: FunctionSpec,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
        key: kms.IKey,
        environment: Mapping[str, str],
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # The literal name, for the key policy: a Ref to the log group would be circular.
        self.log_group_name = settings.log_group_name(f"lambda/{spec.component}")
        self.log_group = encrypted_log_group(
            self,
            "Logs",
            name=self.log_group_name,
            settings=settings,
            key=key,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"payhook {spec.component} ({settings.environment_suffix})",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=settings.name(spec.component),
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=code,
            layers=[layer],
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            timeout=Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            environment=dict(environment),
            environment_encryption=key,
            reserved_concurrent_executions=reserved_concurrency,
        )


class PayhookFunctions(Construct):
    """Receiver, processor, audit and sweeper, wired to the queue, the streams, the schedule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        environment: Mapping[str, str],
        tables: PayhookTables,
        queues: PayhookQueues,
    ) -> None:
        super().__init__(scope, construct_id)
        code = runtime_code()

        def function(
            construct_id: str, spec: FunctionSpec, reserved: int | None
        ) -> PayhookFunction:
            return PayhookFunction(
                self,
                construct_id,
                settings=settings,
                spec=spec,
                code=code,
                layer=layer,
                key=key,
                environment=environment,
                reserved_concurrency=reserved,
            )

        self.receiver = function(
            "Receiver",
            FunctionSpec(
                "receiver",
                "Verifies, stores and enqueues provider webhooks",
                settings.receiver_timeout_seconds,
                settings.receiver_memory_mb,
            ),
            settings.reserved_concurrency,
        )
        self.processor = function(
            "Processor",
            FunctionSpec(
                "processor",
                "Applies stored webhooks to the payment ledger",
                settings.processor_timeout_seconds,
                settings.processor_memory_mb,
            ),
            settings.reserved_concurrency,
        )
        self.audit = function(
            "Audit",
            FunctionSpec(
                "audit",
                "Appends every webhook and payment change to the audit chain",
                settings.audit_timeout_seconds,
                settings.audit_memory_mb,
            ),
            settings.reserved_concurrency,
        )

        # Needs at most one execution, so it reserves none (reserving takes from the pool).
        self.sweeper = function(
            "Sweeper",
            FunctionSpec(
                "sweeper",
                "Re-queues webhooks stored but never queued",
                SWEEPER_TIMEOUT_SECONDS,
                SWEEPER_MEMORY_MB,
            ),
            None,
        )
        self.sweeper.function.add_environment(
            "PAYHOOK_SWEEP_AFTER_SECONDS", str(settings.sweep_after_seconds)
        )
        self.schedule_role, self.sweep_schedule = invoke_every(
            self,
            self.sweeper.function,
            settings,
            component="sweep",
            minutes=settings.sweep_every_minutes,
            description="Re-queue webhooks stored but never queued",
            retries=SWEEP_RETRY_ATTEMPTS,
            id_prefix="Sweep",
        )

        self.processor.function.add_event_source(
            sources.SqsEventSource(
                queues.processing,
                batch_size=PROCESSOR_BATCH_SIZE,
                max_batching_window=Duration.seconds(settings.processor_batching_window_seconds),
                max_concurrency=settings.processor_max_concurrency,
                report_batch_item_failures=True,
            )
        )
        for table in (tables.webhooks, tables.payments):
            self.audit.function.add_event_source(
                sources.DynamoEventSource(
                    table,
                    starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                    batch_size=STREAM_BATCH_SIZE,
                    max_batching_window=Duration.seconds(settings.audit_batching_window_seconds),
                    bisect_batch_on_error=True,
                    retry_attempts=STREAM_RETRY_ATTEMPTS,
                    max_record_age=STREAM_MAX_RECORD_AGE,
                    report_batch_item_failures=True,
                    # One batch per shard at a time: the audit chain is appended in order.
                    parallelization_factor=1,
                    on_failure=sources.SqsDlq(queues.audit_failures),
                )
            )

    @property
    def all(self) -> tuple[PayhookFunction, ...]:
        return (self.receiver, self.processor, self.audit, self.sweeper)


def invoke_every(
    scope: Construct,
    function: lambda_.IFunction,
    settings: PayhookSettings,
    *,
    component: str,
    minutes: int,
    description: str,
    retries: int,
    id_prefix: str = "",
) -> tuple[iam.Role, scheduler.CfnSchedule]:
    """An EventBridge Scheduler schedule (``payhook-<component>-<suffix>``) invoking
    ``function`` every ``minutes``, retried ``retries`` times within the period, through a
    role that may invoke that function (unqualified: no version, no alias) and nothing else."""
    role = iam.Role(
        scope,
        f"{id_prefix}ScheduleRole",
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": Stack.of(scope).account}},
        ),
        description=f"payhook {component} schedule ({settings.environment_suffix})",
    )
    role.add_to_policy(
        iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function.function_arn])
    )
    unit = "minute" if minutes == 1 else "minutes"
    schedule = scheduler.CfnSchedule(
        scope,
        f"{id_prefix}Schedule",
        name=settings.name(component),
        description=description,
        schedule_expression=f"rate({minutes} {unit})",
        flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
        target=scheduler.CfnSchedule.TargetProperty(
            arn=function.function_arn,
            role_arn=role.role_arn,
            retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                maximum_retry_attempts=retries,
                maximum_event_age_in_seconds=60 * minutes,
            ),
        ),
    )
    return role, schedule
