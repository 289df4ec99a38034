"""What every handler does once per execution environment: settings, logging, clients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from payhook.backends.aws.clients import AwsClients, default_clients
from payhook.backends.aws.settings import AwsSettings, load_settings
from payhook.core.clock import Clock
from payhook.runtimes.aws_lambda.logs import configure_logging

if TYPE_CHECKING:
    from payhook.backends.aws.secrets import ProviderSecret
    from payhook.backends.aws.webhooks import DynamoWebhookStore


@dataclass(frozen=True, slots=True)
class ColdStart:
    settings: AwsSettings
    clients: AwsClients

    def provider_secret(self, clock: Clock) -> ProviderSecret:
        """The cached provider configuration (fetched on first use, not here)."""
        # Imported here: the audit handler needs no providers and should not load them.
        from payhook.backends.aws.secrets import ProviderSecret

        return ProviderSecret(
            self.clients.secretsmanager,
            self.settings.providers_secret_arn,
            cache_seconds=self.settings.secret_cache_seconds,
            clock=clock,
        )

    def webhook_store(self, clock: Clock) -> DynamoWebhookStore:
        """The store webhooks are put into and queued from (the receiver, reconciliation)."""
        from payhook.backends.aws.webhooks import DynamoWebhookStore

        settings = self.settings
        return DynamoWebhookStore(
            self.clients.dynamodb,
            self.clients.sqs,
            table=settings.webhooks_table,
            queue_url=settings.queue_url,
            retention_seconds=settings.raw_payload_retention_seconds,
            clock=clock,
        )


def cold_start(
    environ: Mapping[str, str], required: Iterable[str], clients: AwsClients | None
) -> ColdStart:
    """Validate the settings this handler needs and create its clients (no network call)."""
    settings = load_settings(environ, required)
    if "AWS_LAMBDA_FUNCTION_NAME" in environ:
        configure_logging(settings.service_name, settings.environment)
    return ColdStart(settings, clients or default_clients())
