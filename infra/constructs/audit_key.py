"""The KMS HMAC key that authenticates the audit chain.

A key of its own, not the data key (``encryption.py``): a MAC key has another spec and usage,
and other users. The audit function may only call GenerateMac with it (one call per append);
VerifyMac is for whoever verifies the chain, through IAM (the key policy delegates to the
account). The key material never leaves KMS, so writing the audit table is not enough to
forge a head. KMS does not rotate HMAC keys: rotating means a new key, and the entries MAC'd
with the old one verify only with the old one, so it is retained like the data it vouches for.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import PayhookSettings

GENERATE_MAC = "kms:GenerateMac"


class AuditChainKey(Construct):
    """An HMAC_256 key (GENERATE_VERIFY_MAC) with an alias."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: PayhookSettings) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{settings.name('audit-key')}",
            description=f"payhook {settings.environment_suffix}: authenticates the audit chain",
            key_spec=kms.KeySpec.HMAC_256,
            key_usage=kms.KeyUsage.GENERATE_VERIFY_MAC,
            removal_policy=settings.removal_policy,
            pending_window=Duration.days(30 if settings.is_production else 7),
        )

    def grant_generate_mac(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow making MACs with this key, and nothing else (not VerifyMac, not Describe)."""
        return self.key.grant(grantee, GENERATE_MAC)
