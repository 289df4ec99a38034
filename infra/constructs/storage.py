"""The three DynamoDB tables of the contract shared with the AWS backend.

- webhooks: ``webhookId`` (S); TTL ``expiresAt``; GSI ``byStatus`` (``statusShard`` S:
  ``"<status>#<n>"``, 16 keys per status, ``payhook/backends/aws/status_index.py``;
  ``receivedAt`` N; keys only); sparse GSI ``byUnsignedEventId`` (``unsignedEventKey`` S;
  keys only), written only for deliveries whose event id the provider does not sign
- payments: ``provider`` (S) + ``paymentId`` (S)
- audit: ``chain`` (S) + ``seq`` (N)

Webhooks and payments stream new and old images to the audit function.
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import PayhookSettings

WEBHOOKS_TTL_ATTRIBUTE = "expiresAt"
BY_STATUS_INDEX = "byStatus"
STATUS_SHARD_ATTRIBUTE = "statusShard"
BY_UNSIGNED_EVENT_ID_INDEX = "byUnsignedEventId"

_S = dynamodb.AttributeType.STRING
_N = dynamodb.AttributeType.NUMBER


class PayhookTables(Construct):
    """On-demand, customer-key encrypted tables with point-in-time recovery."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)

        def table(
            construct_id: str,
            name: str,
            partition: dynamodb.Attribute,
            sort: dynamodb.Attribute | None = None,
            *,
            streamed: bool = True,
            ttl_attribute: str | None = None,
        ) -> dynamodb.Table:
            return dynamodb.Table(
                self,
                construct_id,
                table_name=settings.name(name),
                partition_key=partition,
                sort_key=sort,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
                encryption_key=key,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                deletion_protection=settings.is_production,
                removal_policy=settings.removal_policy,
                stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if streamed else None,
                time_to_live_attribute=ttl_attribute,
            )

        self.webhooks = table(
            "Webhooks",
            "webhooks",
            dynamodb.Attribute(name="webhookId", type=_S),
            ttl_attribute=WEBHOOKS_TTL_ATTRIBUTE,
        )
        self.webhooks.add_global_secondary_index(
            index_name=BY_STATUS_INDEX,
            # Write-sharded: "<status>#<n>", n = crc32(webhookId) % 16, so no status is one hot
            # key (1,000 WCU/s per key value); readers query every shard of a status.
            partition_key=dynamodb.Attribute(name=STATUS_SHARD_ATTRIBUTE, type=_S),
            sort_key=dynamodb.Attribute(name="receivedAt", type=_N),
            # Keys only: copying raw payloads into the index would double the cost of every
            # webhook write. Query it for ids, then read the items.
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.webhooks.add_global_secondary_index(
            index_name=BY_UNSIGNED_EVENT_ID_INDEX,
            partition_key=dynamodb.Attribute(name="unsignedEventKey", type=_S),
            # Sparse: only items with the attribute (Shopify's, Razorpay's unsigned ids) are in
            # it, so it costs nothing for providers that sign their event ids.
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.payments = table(
            "Payments",
            "payments",
            dynamodb.Attribute(name="provider", type=_S),
            dynamodb.Attribute(name="paymentId", type=_S),
        )
        self.audit = table(
            "Audit",
            "audit",
            dynamodb.Attribute(name="chain", type=_S),
            dynamodb.Attribute(name="seq", type=_N),
            streamed=False,
        )
