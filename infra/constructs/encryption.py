"""The customer-managed KMS key behind every encrypted payhook resource, and its key policy.

Services that call KMS on behalf of an IAM principal of this account (SQS, DynamoDB, Lambda,
Secrets Manager) are allowed through ``kms:ViaService``. Services that call KMS as themselves
need a statement naming their service principal: CloudWatch Logs (per log group, by encryption
context), CloudWatch alarms publishing to the encrypted SNS topic, and EventBridge (added by
the event bus construct).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import PayhookSettings

VIA_SERVICES = ("dynamodb", "lambda", "secretsmanager", "sqs")


class PayhookKey(Construct):
    """A rotating symmetric key with an alias and a policy for each service that uses it."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: PayhookSettings) -> None:
        super().__init__(scope, construct_id)
        self._settings = settings
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{settings.name('key')}",
            description=f"payhook {settings.environment_suffix}: data, queues, logs, secrets",
            enable_key_rotation=True,
            removal_policy=settings.removal_policy,
            pending_window=Duration.days(30 if settings.is_production else 7),
        )
        region = Aws.REGION
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowUseThroughPayhookServices",
                principals=[iam.AccountRootPrincipal()],
                actions=[
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:Encrypt",
                    "kms:GenerateDataKey*",
                    "kms:ReEncrypt*",
                    "kms:CreateGrant",
                ],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:CallerAccount": Aws.ACCOUNT_ID,
                        "kms:ViaService": [f"{s}.{region}.amazonaws.com" for s in VIA_SERVICES],
                    }
                },
            )
        )

    def allow_cloudwatch_alarms(self, alarm_name_pattern: str) -> None:
        """CloudWatch publishes alarm notifications to the encrypted topic as itself."""
        stack = Stack.of(self)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheEncryptedTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:"
                        f"{stack.account}:alarm:{alarm_name_pattern}"
                    },
                },
            )
        )

    def allow_log_groups(
        self, log_group_names: Sequence[str], sid: str = "AllowCloudWatchLogsForPayhookLogGroups"
    ) -> None:
        """CloudWatch Logs encrypts these log groups, and only these, with the key (one
        statement, ``sid``, per call)."""
        stack = Stack.of(self)
        arns = [
            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{name}"
            for name in log_group_names
        ]
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Decrypt*",
                    "kms:Describe*",
                    "kms:Encrypt*",
                    "kms:GenerateDataKey*",
                    "kms:ReEncrypt*",
                ],
                resources=["*"],
                conditions={"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": arns}},
            )
        )
