"""Receiver Lambda: API Gateway -> verify -> DynamoDB + SQS -> acknowledge.

The flow and its answers are ``payhook.service.ingest``'s; this decodes the API Gateway event
and shapes the proxy response. Without usable provider configuration (the secret not loaded
yet, unreadable, or malformed) every delivery gets 503, so providers retry, and a log line
the provider-secret alarm counts.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from payhook.backends.aws.clients import AwsClients
from payhook.backends.aws.secrets import UNUSABLE, ProviderSecret
from payhook.backends.aws.settings import AwsSettings
from payhook.core.clock import Clock, system_clock
from payhook.core.ports import WebhookStore
from payhook.errors import ConfigError, StorageUnavailableError
from payhook.runtimes.aws_lambda import apigateway as api
from payhook.runtimes.aws_lambda.coldstart import cold_start
from payhook.service.ingest import Answer, Ingest, problem

log = logging.getLogger("payhook.aws.receiver")

REQUIRED = ("webhooks_table", "queue_url", "providers_secret_arn")
#: Logged for every delivery refused because the provider secret is missing, unreadable or
#: malformed; infra/constructs/alarms.py turns it into a metric and an alarm.
PROVIDERS_UNUSABLE = UNUSABLE


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
        return cls(start.settings, start.provider_secret(clock), start.webhook_store(clock), clock)

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        name = api.provider_name(event)
        try:
            ingest = Ingest(self.secret.providers(), self.clock, self.settings.body_limit_bytes)
        except (StorageUnavailableError, ConfigError) as exc:
            # Nothing can be verified, so nothing is stored: a 503 makes the provider retry
            # once the secret is loaded or readable. The alarm counts this phrase.
            kind = "malformed" if isinstance(exc, ConfigError) else "unreadable"
            log.error(
                PROVIDERS_UNUSABLE, extra={"provider": name, "secret": kind, "reason": str(exc)}
            )
            return api.response(problem(503, "try again later"))
        if str(event.get("httpMethod", "POST")).upper() == "GET":
            return api.response(ingest.challenge(name, api.webhook_request(event, b"")))
        provider = ingest.route(name)
        if isinstance(provider, Answer):
            return api.response(provider)
        try:
            request = api.webhook_request(event, api.body_bytes(event, ingest.body_limit(provider)))
        except api.BodyTooLargeError:
            return api.response(ingest.too_large(provider))
        except api.BadBodyError as exc:
            return api.response(problem(400, str(exc)))
        return api.response(ingest.receive(name, request, self.store))


@functools.cache
def receiver() -> Receiver:
    """The execution environment's receiver, built on first use (then reused while warm)."""
    return Receiver.from_environment(os.environ)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return receiver().handle(event)
