"""Log groups are created explicitly: named, KMS-encrypted, with a retention period."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import LOG_RETENTION_DAYS, PayhookSettings


def encrypted_log_group(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    settings: PayhookSettings,
    key: kms.IKey,
) -> logs.LogGroup:
    """A log group the key policy must list by name (``PayhookKey.allow_log_groups``)."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=logs.RetentionDays[LOG_RETENTION_DAYS[settings.effective_log_retention_days]],
        encryption_key=key,
        removal_policy=settings.removal_policy,
    )
