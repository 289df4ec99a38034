"""``PayhookService``: the whole serverless runtime as one reusable construct.

It composes the units, grants each function exactly what it needs, and nothing else.
"""

from __future__ import annotations

from constructs import Construct

from infra.config import PayhookSettings
from infra.constructs import (
    AuditChainKey,
    DependenciesLayer,
    PayhookAlarms,
    PayhookDashboard,
    PayhookFunctions,
    PayhookKey,
    PayhookQueues,
    PayhookTables,
    PaymentEventBus,
    ProvidersSecret,
    WebhookApi,
    WebhookFirewall,
)
from infra.constructs.queues import MAX_RECEIVE_COUNT
from infra.constructs.storage import BY_STATUS_INDEX, BY_UNSIGNED_EVENT_ID_INDEX
from infra.grants import grant_index_query, grant_items
from infra.reconcile import add_reconcile

BODY_LIMIT_BYTES = 1024 * 1024


class PayhookService(Construct):
    """API Gateway + WAF -> receiver -> DynamoDB + SQS -> processor -> streams -> audit,
    and the sweeper on a schedule."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: PayhookSettings) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.encryption = PayhookKey(self, "Encryption", settings=settings)
        key = self.encryption.key
        self.audit_key = AuditChainKey(self, "AuditKey", settings=settings)
        self.tables = PayhookTables(self, "Tables", settings=settings, key=key)
        self.queues = PayhookQueues(self, "Queues", settings=settings, key=key)
        self.secret = ProvidersSecret(self, "ProvidersSecret", settings=settings, key=key).secret
        self.bus = PaymentEventBus(self, "EventBus", settings=settings, key=key).bus
        layer = DependenciesLayer(self, "Dependencies", settings=settings).layer
        self.functions = PayhookFunctions(
            self,
            "Functions",
            settings=settings,
            key=key,
            layer=layer,
            environment={
                "PAYHOOK_WEBHOOKS_TABLE": self.tables.webhooks.table_name,
                "PAYHOOK_PAYMENTS_TABLE": self.tables.payments.table_name,
                "PAYHOOK_AUDIT_TABLE": self.tables.audit.table_name,
                "PAYHOOK_QUEUE_URL": self.queues.processing.queue_url,
                "PAYHOOK_EVENT_BUS_NAME": self.bus.event_bus_name,
                "PAYHOOK_PROVIDERS_SECRET_ARN": self.secret.secret_arn,
                "PAYHOOK_ENVIRONMENT": settings.environment_suffix,
                "PAYHOOK_BODY_LIMIT_BYTES": str(BODY_LIMIT_BYTES),
                "PAYHOOK_RAW_PAYLOAD_RETENTION_DAYS": str(settings.raw_payload_retention_days),
                "PAYHOOK_SECRET_CACHE_SECONDS": str(settings.secret_cache_seconds),
                # The processor marks a webhook dead on the last attempt the redrive allows.
                "PAYHOOK_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
                "POWERTOOLS_SERVICE_NAME": "payhook",
            },
            tables=self.tables,
            queues=self.queues,
        )
        # Only the audit function authenticates the chain, and only it appends to the shards.
        self.functions.audit.function.add_environment(
            "PAYHOOK_AUDIT_KEY_ID", self.audit_key.key.key_arn
        )
        self.functions.audit.function.add_environment(
            "PAYHOOK_AUDIT_SHARDS", str(settings.audit_shards)
        )
        self.api = WebhookApi(
            self, "Api", settings=settings, key=key, receiver=self.functions.receiver.function
        )
        self.firewall = WebhookFirewall(
            self,
            "Firewall",
            settings=settings,
            key=key,
            stage_arn=self.api.stage.stage_arn,
            body_limit_bytes=BODY_LIMIT_BYTES,
        )
        self.alarms = PayhookAlarms(
            self,
            "Alarms",
            settings=settings,
            key=self.encryption,
            functions=self.functions,
            queues=self.queues,
            stage=self.api.stage,
            web_acl_name=settings.name("waf"),
        )
        PayhookDashboard(
            self,
            "Dashboard",
            settings=settings,
            stage=self.api.stage,
            web_acl_name=settings.name("waf"),
            functions=self.functions,
            queues=self.queues,
            verification_failures=self.alarms.verification_failures,
            alarms=self.alarms.all,
        )
        self.encryption.allow_log_groups(
            [
                *(f.log_group_name for f in self.functions.all),
                *self.api.log_group_names,
                self.firewall.log_group_name,
            ]
        )
        self._grant()
        if settings.reconcile_every_minutes:  # -c reconcileEveryMinutes=15
            add_reconcile(
                self, layer, every_minutes=settings.reconcile_every_minutes, overlap_minutes=15
            )

    def _grant(self) -> None:
        """Each function gets the calls its code makes (``infra/grants.py``)."""
        tables, queues, functions = self.tables, self.queues, self.functions
        receiver = functions.receiver.function
        grant_items(receiver, tables.webhooks, "dynamodb:PutItem", "dynamodb:UpdateItem")
        grant_index_query(receiver, tables.webhooks, BY_UNSIGNED_EVENT_ID_INDEX)
        queues.processing.grant_send_messages(receiver)
        self.secret.grant_read(receiver)

        processor = functions.processor.function
        grant_items(processor, tables.webhooks, "dynamodb:GetItem", "dynamodb:UpdateItem")
        grant_items(processor, tables.payments, "dynamodb:GetItem", "dynamodb:PutItem")
        self.secret.grant_read(processor)

        # The streams are read by the event sources (CDK grants the stream actions); the
        # function itself reads and writes only the audit table: the last entry of a shard
        # (Query), the markers (BatchGetItem), every shard's head item for a checkpoint
        # (GetItem) and the entries (PutItem, in one transaction).
        audit = functions.audit.function
        grant_items(
            audit,
            tables.audit,
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
        )
        self.bus.grant_put_events_to(audit)
        self.audit_key.grant_generate_mac(audit)

        sweeper = functions.sweeper.function
        grant_index_query(sweeper, tables.webhooks, BY_STATUS_INDEX)
        grant_items(sweeper, tables.webhooks, "dynamodb:BatchGetItem", "dynamodb:UpdateItem")
        queues.processing.grant_send_messages(sweeper)
