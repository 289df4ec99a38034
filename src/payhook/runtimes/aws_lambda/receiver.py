"""Receiver Lambda: API Gateway -> verify -> DynamoDB + SQS -> acknowledge.

200 stored (or duplicate) and scheduled; the provider's rejection status (401 mostly) on
failed verification; 404 unknown provider; 413 body over the limit; 400 authentic but
unusable body; 503 when AWS cannot store or schedule it, so the provider retries.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from payhook.backends.aws.clients import AwsClients
from payhook.backends.aws.secrets import ProviderSecret
from payhook.backends.aws.settings import AwsSettings
from payhook.backends.aws.webhooks import DynamoWebhookStore
from payhook.core.clock import Clock, system_clock
from payhook.core.ports import WebhookStore
from payhook.errors import (
    ConfigError,
    PayloadError,
    StorageUnavailableError,
    UnknownProviderError,
    VerificationError,
)
from payhook.runtimes.aws_lambda import apigateway as api
from payhook.runtimes.aws_lambda.coldstart import cold_start
from payhook.service.ingest import Ingest

log = logging.getLogger("payhook.aws.receiver")

REQUIRED = ("webhooks_table", "queue_url", "providers_secret_arn")
RETRY_AFTER = {"Retry-After": "5"}


class Receiver:
    def __init__(
        self,
        settings: AwsSettings,
        secret: ProviderSecret,
        store: WebhookStore,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.secret = secret
        self.store = store
        self.clock = clock

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        clients: AwsClients | None = None,
        clock: Clock = system_clock,
    ) -> Receiver:
        """Cold start: validate settings and create clients (no network call)."""
        start = cold_start(environ, REQUIRED, clients)
        settings = start.settings
        store = DynamoWebhookStore(
            start.clients.dynamodb,
            start.clients.sqs,
            table=settings.webhooks_table,
            queue_url=settings.queue_url,
            retention_seconds=settings.raw_payload_retention_seconds,
            clock=clock,
        )
        return cls(settings, start.provider_secret(clock), store, clock)

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        name = api.provider_name(event)
        try:
            ingest = Ingest(self.secret.providers(), self.clock)
        except StorageUnavailableError as exc:
            log.error("providers unavailable", extra={"provider": name, "reason": str(exc)})
            return api.error(503, "unavailable", "try again later", **RETRY_AFTER)
        except ConfigError as exc:
            log.error("providers misconfigured", extra={"provider": name, "reason": str(exc)})
            return api.error(500, "misconfigured", "the receiver is misconfigured")
        try:
            provider = ingest.provider(name)
        except UnknownProviderError:
            return api.error(404, "unknown_provider", f"no provider named {name!r} is configured")
        if str(event.get("httpMethod", "POST")).upper() == "GET":
            answer = provider.challenge(api.webhook_request(event, b""))
            if answer is None:
                return api.error(405, "method_not_allowed", "webhooks are delivered with POST")
            return api.response(answer)
        limit = self.settings.body_limit_bytes
        try:
            request = api.webhook_request(event, api.body_bytes(event, limit))
        except api.BodyTooLargeError:
            return api.error(413, "body_too_large", f"the body limit is {limit} bytes")
        except api.BadBodyError as exc:
            return api.error(400, "invalid_body", str(exc))
        try:
            prepared = ingest.prepare(name, request)
        except VerificationError as exc:
            log.info("verification failed", extra={"provider": name, "reason": str(exc)})
            return api.error(provider.rejection_status, "verification_failed", str(exc))
        except PayloadError as exc:
            log.info("invalid payload", extra={"provider": name, "reason": str(exc)})
            return api.error(400, "invalid_payload", str(exc))
        try:
            duplicates = self.store.store(prepared.webhooks)
        except PayloadError as exc:  # authentic, but too large to store even compressed
            log.warning("payload not storable", extra={"provider": name, "reason": str(exc)})
            return api.error(413, "payload_too_large", str(exc))
        except StorageUnavailableError as exc:
            log.error("storage unavailable", extra={"provider": name, "reason": str(exc)})
            return api.error(503, "storage_unavailable", "try again later", **RETRY_AFTER)
        return api.response(prepared.acknowledge(duplicates))


@functools.cache
def receiver() -> Receiver:
    """The execution environment's receiver, built on first use (then reused while warm)."""
    return Receiver.from_environment(os.environ)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return receiver().handle(event)
