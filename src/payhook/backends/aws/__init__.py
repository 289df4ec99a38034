"""The serverless backend: DynamoDB, SQS, EventBridge and Secrets Manager behind the ports.

| module       | what                                                                     |
|--------------|--------------------------------------------------------------------------|
| settings     | ``AwsSettings`` from the environment, validated at cold start            |
| clients      | boto3 clients, lazy, one set per execution environment, injectable       |
| webhooks     | ``DynamoWebhookStore`` (WebhookStore): conditional put, then SQS         |
| sweep        | ``WebhookSweeper``: re-queue webhooks stranded in ``received``           |
| redrive      | ``redrive_dead_letters``, ``redrive_webhooks``: dead -> received, queued |
| payments     | ``DynamoProcessingStore`` (ProcessingStore): one TransactWriteItems      |
| audit        | ``DynamoAuditLog`` (AuditLog): entries + markers + head, one transaction |
| shards       | ``ShardedAuditLog``: a chain per hash bucket of the subject, checkpoints |
| trails       | ``Trails``: changes missing from the chain (gaps), per subject           |
| verify       | ``verify_stack``, ``repair_gaps``: ``audit verify`` and ``audit repair`` |
| deployed     | ``DeployedStack``: a deployed stack's resources, for the operator CLI    |
| reader       | ``DynamoReader``: the operator's paged reads (``SqliteReader``'s)         |
| replay       | ``replay_webhook``: process a stored webhook again                       |
| streams      | stream records -> audit changes and payment events to publish            |
| events       | ``EventPublisher``: canonical events to EventBridge                      |
| secrets      | ``ProviderSecret``: provider configuration from Secrets Manager          |
| messages     | the processing queue's ``{"webhookId": ...}`` messages                   |
| items        | DynamoDB attribute values <-> webhook records                            |
| errors       | botocore errors -> payhook errors                                        |

Names are imported on first use: each Lambda loads only the modules it needs (cold start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from payhook.backends.aws.audit import DynamoAuditLog
    from payhook.backends.aws.clients import AwsClients, default_clients, reset_default_clients
    from payhook.backends.aws.deployed import DeployedStack, StackNames
    from payhook.backends.aws.events import EventPublisher
    from payhook.backends.aws.payments import DynamoProcessingStore
    from payhook.backends.aws.reader import DynamoReader
    from payhook.backends.aws.redrive import (
        RedriveReport,
        redrive_dead_letters,
        redrive_webhooks,
    )
    from payhook.backends.aws.replay import replay_webhook
    from payhook.backends.aws.secrets import ProviderSecret, provider_configs
    from payhook.backends.aws.settings import AwsSettings, load_settings
    from payhook.backends.aws.shards import ShardedAuditLog
    from payhook.backends.aws.streams import StreamChange, read_record
    from payhook.backends.aws.sweep import SweepResult, WebhookSweeper
    from payhook.backends.aws.trails import Gap, Trails
    from payhook.backends.aws.verify import StackAuditReport, repair_gaps, verify_stack
    from payhook.backends.aws.webhooks import DynamoWebhookStore

_MODULES = {
    "AwsClients": "clients",
    "AwsSettings": "settings",
    "DeployedStack": "deployed",
    "DynamoAuditLog": "audit",
    "DynamoReader": "reader",
    "Gap": "trails",
    "ShardedAuditLog": "shards",
    "StackAuditReport": "verify",
    "StackNames": "deployed",
    "Trails": "trails",
    "repair_gaps": "verify",
    "replay_webhook": "replay",
    "verify_stack": "verify",
    "DynamoProcessingStore": "payments",
    "DynamoWebhookStore": "webhooks",
    "EventPublisher": "events",
    "ProviderSecret": "secrets",
    "RedriveReport": "redrive",
    "StreamChange": "streams",
    "SweepResult": "sweep",
    "WebhookSweeper": "sweep",
    "default_clients": "clients",
    "load_settings": "settings",
    "provider_configs": "secrets",
    "read_record": "streams",
    "redrive_dead_letters": "redrive",
    "redrive_webhooks": "redrive",
    "reset_default_clients": "clients",
}

__all__ = [
    "AwsClients",
    "AwsSettings",
    "DeployedStack",
    "DynamoAuditLog",
    "DynamoProcessingStore",
    "DynamoReader",
    "DynamoWebhookStore",
    "EventPublisher",
    "Gap",
    "ProviderSecret",
    "RedriveReport",
    "ShardedAuditLog",
    "StackAuditReport",
    "StackNames",
    "StreamChange",
    "SweepResult",
    "Trails",
    "WebhookSweeper",
    "default_clients",
    "load_settings",
    "provider_configs",
    "read_record",
    "redrive_dead_letters",
    "redrive_webhooks",
    "repair_gaps",
    "replay_webhook",
    "reset_default_clients",
    "verify_stack",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return getattr(module, name)
